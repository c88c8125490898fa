/** The load test's device generator processes (generator.ts) as the driver sees them, and their reports summed. */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { DriverMessage, GeneratorMessage, RoundStats } from './messages.js';

export class Generator {
  private readonly child: ChildProcess;
  private readonly waiting: ((message: GeneratorMessage) => void)[] = [];

  constructor() {
    this.child = fork(join(import.meta.dirname, 'generator.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (message: GeneratorMessage) => this.waiting.shift()?.(message));
  }

  ask<T extends GeneratorMessage['type']>(message: DriverMessage, answer: T): Promise<Extract<GeneratorMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`generator exited (${code})`));
      this.child.once('exit', exited);
      this.waiting.push((reply) => {
        this.child.off('exit', exited);
        if (reply.type === answer) resolve(reply as Extract<GeneratorMessage, { type: T }>);
        else reject(new Error(`generator answered ${reply.type}, expected ${answer}`));
      });
      this.child.send(message);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send({ type: 'close' } satisfies DriverMessage);
    setTimeout(() => this.child.kill('SIGKILL'), 5_000).unref();
  }
}

export function sumStats(all: RoundStats[]): RoundStats {
  const total: RoundStats = {
    configured: 0,
    paced: 0,
    uploadsSent: 0,
    accepted: 0,
    rejected: 0,
    lostAcks: 0,
    firstSendAt: null,
    lastAckAt: null,
    disconnects: 0,
    rejections: {},
  };
  for (const s of all) {
    total.configured += s.configured;
    total.paced += s.paced;
    total.uploadsSent += s.uploadsSent;
    total.accepted += s.accepted;
    total.rejected += s.rejected;
    total.lostAcks += s.lostAcks;
    total.disconnects += s.disconnects;
    if (s.firstSendAt !== null) total.firstSendAt = Math.min(total.firstSendAt ?? Infinity, s.firstSendAt);
    if (s.lastAckAt !== null) total.lastAckAt = Math.max(total.lastAckAt ?? 0, s.lastAckAt);
    for (const [reason, count] of Object.entries(s.rejections)) total.rejections[reason] = (total.rejections[reason] ?? 0) + count;
  }
  return total;
}
