/**
 * `pnpm loadtest --processes P --kill non-leader|leader`: kill -9 of a coordinator process in the
 * middle of a round's uploads (issue 12). A non-leader's death loses only its partial aggregate:
 * the round still commits with the other processes' updates. The leader's death aborts its round
 * (the next process to take the round lease marks it so), and the next round runs on another
 * process. Measured from outside, like the rest of the load test.
 */
import type { CoordinatorProcess } from '../lib/coordinator-process.js';
import { connectedCount, roundDetails, startRound } from './coordinators.js';
import { sumStats, type Generator } from './generators.js';

export type KillTarget = 'non-leader' | 'leader';

export interface KillResult {
  killed: KillTarget;
  /** Accepted updates the leader had counted when the process was killed. */
  acceptedAtKill: number;
  /** The round the kill hit: its end, and what it committed with. */
  hitRound: { status: string; accepted: number; error: string | null; secondsAfterKill: number };
  /** Leader killed: the next round, started on a surviving process. */
  nextRound: { status: string; accepted: number; selected: number; process: number } | null;
  /** What the devices saw over both rounds (those of the killed process disconnect, and their pending acks are lost). */
  devicesDisconnected: number;
  lostAcks: number;
}

type Details = Awaited<ReturnType<typeof roundDetails>>;

const sleep = (ms: number): Promise<void> => new Promise((wait) => setTimeout(wait, ms));

/** Polls a coordinator until the round has ended (as that process sees it: from storage unless it drives it). */
async function ended(url: string, roundId: string, timeoutMs: number): Promise<Details> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const details = await roundDetails(url, roundId).catch(() => null);
    if (details?.endedAt) return details;
    if (Date.now() > until) throw new Error(`round ${roundId} still ${details?.status ?? 'unknown'} after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

export async function killMidRound(
  target: KillTarget,
  coordinators: CoordinatorProcess[],
  generators: Generator[],
  options: { uploads: number; deadlineSeconds: number; say: (line: string) => void },
): Promise<KillResult> {
  const { uploads, deadlineSeconds, say } = options;
  const urls = coordinators.map((c) => c.url);
  const victim = target === 'leader' ? 0 : 1; // rounds are started on process 0, which drives them
  // Quorum at half the target: a lost partial (about 1/P of the uploads) must not sink the round.
  const round = await startRound(urls[0]!, {
    minClients: Math.ceil(uploads / 2),
    targetClients: uploads,
    overSelection: 1,
    deadlineSeconds,
    selectionTimeoutSeconds: 120,
  });
  let acceptedAtKill = 0;
  for (;;) {
    const details = await roundDetails(urls[0]!, round.id);
    acceptedAtKill = details.metrics.accepted;
    if (acceptedAtKill >= uploads / 3 || details.endedAt) break;
    await sleep(200);
  }
  coordinators[victim]!.child.kill('SIGKILL');
  const killedAt = Date.now();
  say(`killed process ${victim} (${target}) with ${acceptedAtKill} of ${uploads} updates accepted`);
  const survivor = urls[victim === 0 ? 1 : 0]!;
  const hit = await ended(survivor, round.id, (deadlineSeconds + 120) * 1000);
  const hitRound = { status: hit.status, accepted: hit.metrics.accepted, error: hit.error, secondsAfterKill: (Date.now() - killedAt) / 1000 };
  say(
    `the round it hit: ${hit.status} with ${hit.metrics.accepted} updates${hit.error ? ` (${hit.error})` : ''}, ${hitRound.secondsAfterKill.toFixed(1)} s after the kill`,
  );
  let nextRound: KillResult['nextRound'] = null;
  if (target === 'leader') {
    // The survivors' devices: the dead process's are purged once its heartbeat lapses.
    await sleep(1_000);
    const left = await connectedCount(survivor);
    const wanted = Math.max(1, Math.floor(Math.min(uploads, left) * 0.9));
    const next = await startRound(survivor, {
      minClients: Math.ceil(wanted / 2),
      targetClients: wanted,
      overSelection: 1,
      deadlineSeconds,
      selectionTimeoutSeconds: 120,
    });
    const done = await ended(survivor, next.id, (deadlineSeconds + 120) * 1000);
    nextRound = { status: done.status, accepted: done.metrics.accepted, selected: done.metrics.selected, process: 1 };
    say(`next round on process 1: ${done.status}, ${done.metrics.accepted} of ${done.metrics.selected} selected accepted (${left} devices connected)`);
  }
  const reports = await Promise.all(generators.map((generator) => generator.ask({ type: 'report', graceMs: 5_000 }, 'round')));
  const stats = sumStats(reports.map((report) => report.stats));
  return { killed: target, acceptedAtKill, hitRound, nextRound, devicesDisconnected: stats.disconnects, lostAcks: stats.lostAcks };
}
