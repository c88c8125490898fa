import { ClientEvent, type SecAggAck, type SecAggRelay, type SecAggRoster, type SecAggUnmask } from '@flock/client-sdk/protocol';
import { SecAggServerSession, type Refused, type SecAggResult } from '@flock/client-sdk/secagg';
import type { SecureAggregationParams } from '../../contract/index.js';
import { moduleLogger } from '../../logging/logger.js';

const log = moduleLogger('secure-aggregation');

/** The device events of the phases after advertising. */
export type SecurePhaseEvent = typeof ClientEvent.secAggShares | typeof ClientEvent.secAggMasked | typeof ClientEvent.secAggReveal;

/** How the secure round reaches a device (the device directory's sendTo, narrowed). */
export interface SecureRoundSender {
  roster(clientId: string, roster: SecAggRoster): Promise<void>;
  relay(clientId: string, relay: SecAggRelay): Promise<void>;
  unmask(clientId: string, request: SecAggUnmask): Promise<void>;
}

export interface SecureRoundOptions {
  roundId: string;
  baseVersion: number;
  deltaLength: number;
  maxWeight: number;
  minClients: number;
  params: SecureAggregationParams;
  /** Distributed DP: the round's noise multiplier z, which the devices' noise adds up to. */
  noiseMultiplier?: number;
  send: SecureRoundSender;
}

/** What the round record shows of a secure round: the size of each set. */
export interface SecureRoundCounts {
  advertised: number;
  sharedKeys: number;
  maskedInputs: number;
  revealed: number;
}

/**
 * One secure round's protocol in the coordinator (the I/O around SecAggServerSession): devices'
 * key advertisements arrive while the round reports (each counts as the device's answer); when
 * the round commits, `run()` drives the three phases that follow, each ending when every device
 * it waits for has answered or left, or at its deadline (`phaseTimeoutMs`). It never sees an
 * individual update unmasked: the session keeps only the running sum of masked inputs.
 */
export class SecureRound {
  readonly session: SecAggServerSession;
  /** Devices that disconnected: no phase waits for them. */
  private readonly left = new Set<string>();
  private phaseEnded: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private disposed = false;

  constructor(private readonly options: SecureRoundOptions) {
    const { params } = options;
    this.session = new SecAggServerSession({
      roundId: options.roundId,
      modelVersion: options.baseVersion,
      deltaLength: options.deltaLength,
      clipNorm: params.clipNorm,
      maxWeight: options.maxWeight,
      thresholdFraction: params.thresholdFraction,
      keyAgreement: params.keyAgreement,
      ...(params.neighbours !== null ? { neighbours: params.neighbours } : {}),
      // Public, and fresh per round: only spreads neighbourhoods (see docs/SECURITY.md for what a malicious coordinator could do with it).
      graphSeed: Math.floor(Math.random() * 2 ** 32),
      minDevices: options.minClients,
      ...(options.noiseMultiplier === undefined ? {} : { noiseMultiplier: options.noiseMultiplier }),
    });
  }

  counts(): SecureRoundCounts {
    return this.session.counts();
  }

  advertise(clientId: string, payload: unknown): Promise<SecAggAck> {
    return this.session.receiveAdvertise(clientId, payload);
  }

  /** A message of a later phase; an accepted one may end the phase. */
  receive(event: SecurePhaseEvent, clientId: string, payload: unknown): SecAggAck {
    const ack =
      event === ClientEvent.secAggShares
        ? this.session.receiveShares(clientId, payload)
        : event === ClientEvent.secAggMasked
          ? this.session.receiveMasked(clientId, payload)
          : this.session.receiveReveal(clientId, payload);
    if (ack.accepted) this.checkPhaseDone();
    else log.warn({ roundId: this.options.roundId, clientId, event, reason: ack.reason, detail: ack.message }, 'secure aggregation message refused');
    return ack;
  }

  deviceLeft(clientId: string): void {
    this.left.add(clientId);
    this.checkPhaseDone();
  }

  /** The round ended (cancelled, shut down): stop waiting. */
  dispose(): void {
    this.disposed = true;
    this.endPhase();
  }

  /** Share keys, masked input, unmasking; then the unmasked sum, or why there is none. */
  async run(): Promise<SecAggResult | Refused> {
    const { roundId, params, send } = this.options;
    const started = performance.now();
    const rosters = this.session.closeAdvertise(Date.now() + params.phaseTimeoutMs);
    if ('failed' in rosters) return rosters;
    await this.phase(rosters.rosters, (clientId, roster) => send.roster(clientId, roster));
    if (this.disposed) return { failed: 'the round ended' };
    const relays = this.session.closeShareKeys(Date.now() + params.phaseTimeoutMs);
    if ('failed' in relays) return relays;
    await this.phase(relays.relays, (clientId, relay) => send.relay(clientId, relay));
    if (this.disposed) return { failed: 'the round ended' };
    const requests = this.session.closeMaskedInput(Date.now() + params.phaseTimeoutMs);
    if ('failed' in requests) return requests;
    await this.phase(requests.requests, (clientId, request) => send.unmask(clientId, request));
    if (this.disposed) return { failed: 'the round ended' };
    const unmaskStarted = performance.now();
    const result = await this.session.finish();
    const unmaskMs = performance.now() - unmaskStarted;
    log.info({ roundId, ...this.counts(), unmaskMs: Math.round(unmaskMs), phasesMs: Math.round(performance.now() - started) }, 'secure aggregation finished');
    return result;
  }

  /** Sends each device its message, then waits for the phase to end. */
  private async phase<T>(messages: Map<string, T>, send: (clientId: string, message: T) => Promise<void>): Promise<void> {
    const ended = new Promise<void>((resolve) => (this.phaseEnded = resolve));
    this.timer = setTimeout(() => this.endPhase(), this.options.params.phaseTimeoutMs);
    const sends = await Promise.allSettled([...messages].map(([clientId, message]) => send(clientId, message)));
    const failed = sends.filter((result) => result.status === 'rejected').length;
    if (failed > 0) log.warn({ roundId: this.options.roundId, failed }, 'sending secure aggregation messages failed');
    this.checkPhaseDone();
    await ended;
  }

  private checkPhaseDone(): void {
    if (this.phaseEnded && this.session.awaiting().every((clientId) => this.left.has(clientId))) this.endPhase();
  }

  private endPhase(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ended = this.phaseEnded;
    this.phaseEnded = null;
    ended?.();
  }
}

/** Bytes of the binary fields of an accepted secure-aggregation message (keys, sealed shares, the masked input, revealed shares): what it cost the device to send. */
export function binaryBytes(payload: unknown): number {
  let bytes = 0;
  for (const value of Object.values(payload as Record<string, unknown>))
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) bytes += value.byteLength;
  return bytes;
}
