import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import type { Server } from 'socket.io';
import type { ClientToServerEvents, ConditionsReport, IneligibilityReason, ServerToClientEvents } from '@flock/client-sdk/protocol';
import { MetricsService } from '../metrics/metrics.service.js';

/** What the coordinator knows about a connected device: no personal data, only its opaque id and eligibility. */
export interface ConnectedClient {
  clientId: string;
  socketId: string;
  connectedAt: number;
  eligible: boolean;
  reasons: IneligibilityReason[];
  /** The round the client was selected for, while it lasts. */
  roundId: string | null;
}

export interface ClientCounts {
  connected: number;
  eligible: number;
  /** Connected clients selected for the round in flight. */
  inRound: number;
}

type RegistryEvents = {
  /** Some client became available for selection (connected eligible, or released). */
  available: [];
  /** A client's socket closed. */
  disconnected: [clientId: string];
};

export type FlockServer = Server<ClientToServerEvents, ServerToClientEvents>;

/** Each client gets a room named after its id, so emits reach it through the socket.io adapter too. */
export function clientRoom(clientId: string): string {
  return `client:${clientId}`;
}

/**
 * Connected devices and their eligibility. The gateway feeds it; the round engine reads it to
 * select participants and sends through it.
 */
@Injectable()
export class ClientRegistry {
  private readonly clients = new Map<string, ConnectedClient>();
  private server: FlockServer | null = null;
  readonly events = new EventEmitter<RegistryEvents>();

  constructor(private readonly metrics: MetricsService) {}

  bindServer(server: FlockServer): void {
    this.server = server;
  }

  /** Registers a connection; returns the socket id it replaced (same client id connected twice), if any. */
  connect(clientId: string, socketId: string): string | null {
    const previous = this.clients.get(clientId);
    this.clients.set(clientId, {
      clientId,
      socketId,
      connectedAt: Date.now(),
      eligible: false,
      reasons: ['unknown_conditions'],
      roundId: previous?.roundId ?? null,
    });
    this.updateGauges();
    return previous && previous.socketId !== socketId ? previous.socketId : null;
  }

  /** Forgets a connection; ignored if the client has since reconnected on another socket. */
  disconnect(clientId: string, socketId: string): boolean {
    const client = this.clients.get(clientId);
    if (!client || client.socketId !== socketId) return false;
    this.clients.delete(clientId);
    this.updateGauges();
    this.events.emit('disconnected', clientId);
    return true;
  }

  /** Closes an older socket of a client that connected again (works across nodes with an adapter). */
  disconnectSocket(socketId: string): void {
    this.server?.in(socketId).disconnectSockets(true);
  }

  setConditions(clientId: string, report: Required<ConditionsReport>): void {
    const client = this.clients.get(clientId);
    if (!client) return;
    const becameEligible = report.eligible && !client.eligible;
    client.eligible = report.eligible;
    client.reasons = report.eligible ? [] : report.reasons;
    this.updateGauges();
    if (becameEligible && client.roundId === null) this.events.emit('available');
  }

  get(clientId: string): ConnectedClient | undefined {
    return this.clients.get(clientId);
  }

  /** Connected, eligible clients not already in a round. */
  available(): string[] {
    return [...this.clients.values()].filter((c) => c.eligible && c.roundId === null).map((c) => c.clientId);
  }

  assignRound(clientIds: readonly string[], roundId: string): void {
    for (const id of clientIds) {
      const client = this.clients.get(id);
      if (client) client.roundId = roundId;
    }
  }

  /** Frees every client of a round that ended. */
  releaseRound(roundId: string): void {
    let released = false;
    for (const client of this.clients.values()) {
      if (client.roundId === roundId) {
        client.roundId = null;
        released ||= client.eligible;
      }
    }
    if (released) this.events.emit('available');
  }

  counts(): ClientCounts {
    let eligible = 0;
    let inRound = 0;
    for (const client of this.clients.values()) {
      if (client.eligible) eligible++;
      if (client.roundId !== null) inRound++;
    }
    return { connected: this.clients.size, eligible, inRound };
  }

  sendTo<E extends keyof ServerToClientEvents>(clientId: string, event: E, ...args: Parameters<ServerToClientEvents[E]>): void {
    this.server?.to(clientRoom(clientId)).emit(event, ...args);
  }

  broadcast<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): void {
    this.server?.emit(event, ...args);
  }

  private updateGauges(): void {
    const counts = this.counts();
    this.metrics.connectedClients.set(counts.connected);
    this.metrics.eligibleClients.set(counts.eligible);
  }
}
