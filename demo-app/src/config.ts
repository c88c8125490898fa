/** The page's settings, from its URL parameters (documented in main.ts and the README). */
import { PERSONALIZATION_METHODS, type PersonalizationMethod, type UnknownConditionPolicy } from '@flock/client-sdk';

/** Examples the device needs before it joins federated training (some are held out for tests). */
export const MIN_EXAMPLES = 10;

/** Where the user's choice of personalization method is remembered (the SDK takes it at construction). */
export const PERSONALIZATION_KEY = 'flock-demo-personalization';

/** The 2NN's output layer: what stays on the device with personal layers. */
export const DEMO_PERSONAL_LAYERS = ['output'];

export interface DemoConfig {
  serverUrl: string;
  clientToken: string;
  /** Which MNIST window "Seed with MNIST" loads. */
  seed: number;
  idleAfterMs: number;
  unknownConditions: UnknownConditionPolicy;
  /** How this device keeps its own model: the `personalization` URL parameter, else the user's last choice, else fine-tune. */
  personalization: PersonalizationMethod;
}

function isMethod(value: string | null): value is PersonalizationMethod {
  return (PERSONALIZATION_METHODS as readonly (string | null)[]).includes(value);
}

export function readConfig(): DemoConfig {
  const params = new URLSearchParams(location.search);
  const unknown = params.get('unknown');
  const idleAfterMs = Number(params.get('idleAfterMs') ?? 60_000);
  return {
    serverUrl: params.get('server') ?? import.meta.env.VITE_FLOCK_SERVER ?? 'http://localhost:8080',
    clientToken: params.get('token') ?? import.meta.env.VITE_FLOCK_CLIENT_TOKEN ?? '',
    seed: Math.max(0, Math.floor(Number(params.get('seed') ?? 0)) || 0),
    idleAfterMs: Number.isFinite(idleAfterMs) && idleAfterMs >= 0 ? idleAfterMs : 60_000,
    unknownConditions: unknown === 'eligible' || unknown === 'ineligible' ? unknown : { unmetered: 'eligible' },
    personalization: [params.get('personalization'), localStorage.getItem(PERSONALIZATION_KEY)].find(isMethod) ?? 'fine-tune',
  };
}
