import type { RejectionReason } from '@flock/client-sdk/protocol';
import { UploadRejection } from '../../src/rounds/upload-intake.js';

/** The upload intake's answer to `check`: the reason it refused with, or 'accepted'; any other error is thrown on. */
export function rejectionReasonOf(check: () => unknown): RejectionReason | 'accepted' {
  try {
    check();
    return 'accepted';
  } catch (error) {
    if (error instanceof UploadRejection) return error.reason;
    throw error;
  }
}
