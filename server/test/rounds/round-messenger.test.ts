import { describe, expect, it } from 'vitest';
import { ServerEvent, type RoundConfiguration } from '@flock/client-sdk/protocol';
import type { DeviceDirectory } from '../../src/devices/device-directory.js';
import { RoundMessenger, type RoundOpening } from '../../src/rounds/round-messenger.js';
import { UploadEndpoints } from '../../src/uploads/upload-endpoints.js';

/** The directory's sending side, recording what each device was sent (the messenger is what is tested). */
function recordingDirectory(): { directory: DeviceDirectory; sent: Map<string, RoundConfiguration> } {
  const sent = new Map<string, RoundConfiguration>();
  const directory = {
    sendTo: async (clientId: string, event: string, payload: RoundConfiguration) => {
      if (event === ServerEvent.configure) sent.set(clientId, payload);
    },
  } as unknown as DeviceDirectory;
  return { directory, sent };
}

const opening = (processes: number) => ({
  roundId: '00000000-0000-4000-8000-000000000001',
  baseVersion: 3,
  plan: { epochs: 1, batchSize: 10, learningRate: 0.05 } as RoundConfiguration['plan'],
  weightSpecs: [{ name: 'w', shape: [442], dtype: 'float32' as const }],
  deadlineAt: Date.now() + 120_000,
  processes,
});

describe('RoundMessenger', () => {
  it('gives every participant its plan and a report window, in batches, paced per coordinator process', async () => {
    const participants = Array.from({ length: 600 }, (_, i) => `device-${i}`);
    const windowsOf = async (processes: number) => {
      const { directory, sent } = recordingDirectory();
      await new RoundMessenger(directory, { uploadsPerSecond: 200, uploadBytesPerSecond: 64 * 1024 * 1024, windowMs: 1000 }).configure(
        participants,
        opening(processes),
      );
      expect(sent.size).toBe(600);
      expect([...sent.values()].every((configuration) => configuration.modelVersion === 3 && configuration.reportWindow !== undefined)).toBe(true);
      return new Set([...sent.values()].map((configuration) => configuration.reportWindow!.notBefore)).size;
    };
    // 600 uploads at 200/s: three windows of a second for one process; three processes fold them in one.
    expect(await windowsOf(1)).toBe(3);
    expect(await windowsOf(3)).toBe(1);
  });

  it('sends plans without a window when pace steering is off', async () => {
    const { directory, sent } = recordingDirectory();
    await new RoundMessenger(directory, null).configure(['a', 'b'], opening(1));
    expect([...sent.values()].map((configuration) => configuration.reportWindow)).toEqual([undefined, undefined]);
  });

  it('names the upload listener with a ticket per device for models of at least its minimum size, and never in a secure round', async () => {
    const endpoints = new UploadEndpoints();
    endpoints.listening(9001, null, 2000); // the tiny opening's model has 442 values: 1,768 bytes
    const plans = async (bytesPerValue: number, secure = false) => {
      const { directory, sent } = recordingDirectory();
      const round = { ...opening(1), weightSpecs: [{ name: 'w', shape: [442 * bytesPerValue], dtype: 'float32' as const }] };
      const secureAggregation = { clipNorm: 1 } as unknown as NonNullable<RoundOpening['secureAggregation']>;
      await new RoundMessenger(directory, null, endpoints).configure(['a', 'b'], secure ? { ...round, secureAggregation } : round);
      return [...sent.values()].map((configuration) => configuration.upload);
    };
    expect(await plans(1)).toEqual([undefined, undefined]);
    const [a, b] = await plans(2);
    expect(a).toMatchObject({ port: 9001 });
    expect(a!.ticket).not.toBe(b!.ticket);
    expect(await plans(2, true)).toEqual([undefined, undefined]);
  });
});
