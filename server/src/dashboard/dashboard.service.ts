import { Inject, Injectable } from '@nestjs/common';
import { isRoundFinished } from '@flock/client-sdk/protocol';
import { DEFAULT_STRATEGY, describeStrategy, STRATEGY_NAMES } from '../aggregation/strategies.js';
import { DEVICE_DIRECTORY, type DeviceDirectory } from '../devices/device-directory.js';
import { ModelsService } from '../models/models.service.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import type { DashboardActiveRound, DashboardState, DashboardStrategy } from './dashboard-state.js';

/** How many recent rounds and model versions a snapshot carries. */
export const DASHBOARD_HISTORY = 100;

/** What the start-round form shows about each strategy (static: computed once). */
const STRATEGIES: readonly DashboardStrategy[] = STRATEGY_NAMES.map((name) => {
  const { summary, options, defaults } = describeStrategy(name);
  return {
    name,
    summary,
    options,
    defaults: Object.fromEntries(Object.entries(defaults).filter((entry): entry is [string, number] => typeof entry[1] === 'number')),
  };
});

/** Builds the operator dashboard's snapshots from the live services (the round in flight comes from memory). */
@Injectable()
export class DashboardService {
  constructor(
    @Inject(DEVICE_DIRECTORY) private readonly devices: DeviceDirectory,
    private readonly rounds: RoundsService,
    private readonly models: ModelsService,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
  ) {}

  async snapshot(): Promise<DashboardState> {
    const activeId = this.rounds.activeRoundId();
    const [active, rounds, models, clients] = await Promise.all([
      activeId ? this.rounds.get(activeId).catch(() => null) : Promise.resolve(null),
      this.rounds.list({ limit: DASHBOARD_HISTORY }),
      this.models.list(),
      this.devices.counts(),
    ]);
    // The round may have ended while its view was read: then it is history, not in flight.
    const activeRound: DashboardActiveRound | null = active && !isRoundFinished(active.status) ? active : null;
    return {
      serverTime: Date.now(),
      clients,
      activeRound,
      rounds,
      // The ledger's RDP curve (a few KB per version) stays on the server.
      models: models.slice(0, DASHBOARD_HISTORY).map(({ privacy, ...model }) => ({
        ...model,
        privacy: privacy && { protected: privacy.protected, dpRounds: privacy.dpRounds, epsilon: privacy.epsilon, delta: privacy.delta },
      })),
      privacy: { delta: this.config.privacy.delta, budgetEpsilon: this.config.privacy.budget?.epsilon ?? null },
      strategies: STRATEGIES,
      defaultStrategy: DEFAULT_STRATEGY,
    };
  }
}

/** What a snapshot says, minus the clock: two snapshots with equal fingerprints show the same page. */
export function fingerprint(state: DashboardState): string {
  return JSON.stringify({
    ...state,
    serverTime: 0,
    activeRound: state.activeRound ? { ...state.activeRound, timeLeftMs: null } : null,
  });
}
