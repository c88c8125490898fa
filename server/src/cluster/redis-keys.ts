/**
 * Every Redis key and channel the coordinator processes share, under one configurable prefix (tests
 * use a random one so that parallel runs don't collide). Pure: names only.
 *
 * | key | type | what |
 * |---|---|---|
 * | `device:<id>` | hash | socket, process, address, user, eligible (0/1), round ('' when none) |
 * | `connected`, `eligible`, `available`, `inround` | set | device ids by state: each count is an SCARD |
 * | `round:<id>:members` | set | the round's participants (selection assigns, disconnect removes) |
 * | `round:<id>:answered` | set | participants whose one upload was admitted (SADD answers 0/1) |
 * | `round:<id>:open` | string | present while the round takes uploads: its descriptor (JSON, no weights) |
 * | `round:<id>:partial:<process>` | string | one process's partial aggregate (binary) |
 * | `processes` | set | ids of processes that registered |
 * | `process:<id>:alive` | string | the process's heartbeat (expires after the process TTL) |
 * | `process:<id>:devices` | set | the devices whose socket the process holds |
 * | channel `events` | pub/sub | device availability and disconnections, to every process |
 * | channel `rounds` | pub/sub | round messages between the leader and the other processes |
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  device(clientId: string): string {
    return `${this.prefix}device:${clientId}`;
  }
  get connected(): string {
    return `${this.prefix}connected`;
  }
  get eligible(): string {
    return `${this.prefix}eligible`;
  }
  get available(): string {
    return `${this.prefix}available`;
  }
  get inRound(): string {
    return `${this.prefix}inround`;
  }
  roundMembers(roundId: string): string {
    return `${this.prefix}round:${roundId}:members`;
  }
  roundAnswered(roundId: string): string {
    return `${this.prefix}round:${roundId}:answered`;
  }
  roundOpen(roundId: string): string {
    return `${this.prefix}round:${roundId}:open`;
  }
  partial(roundId: string, processId: string): string {
    return `${this.prefix}round:${roundId}:partial:${processId}`;
  }
  get processes(): string {
    return `${this.prefix}processes`;
  }
  processAlive(processId: string): string {
    return `${this.prefix}process:${processId}:alive`;
  }
  processDevices(processId: string): string {
    return `${this.prefix}process:${processId}:devices`;
  }
  get eventsChannel(): string {
    return `${this.prefix}events`;
  }
  get roundsChannel(): string {
    return `${this.prefix}rounds`;
  }
}
