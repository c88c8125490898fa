/**
 * Model-on-demand over RabbitMQ (AMQP 0-9-1): the wire format of a prediction request, its reply,
 * a dead-lettered request and a version announcement. One definition, used by the event processor
 * (server/src/on-demand/), the client helper (`OnDemandClient`) and the tests.
 *
 * The tensors travel as raw little-endian float32 in the message body, with the shape in a header:
 * a one-row MNIST request is 3,136 bytes that need no parsing (the V2 JSON form is ~2-4x larger and
 * costs a JSON parse and a number check per value on both sides), and the values are exactly the
 * float32s the model computes with.
 */
import { z } from 'zod';

/** `content_type` of requests and successful replies: float32 little-endian, row-major. */
export const ON_DEMAND_CONTENT_TYPE = 'application/x-flock-float32';
/** Largest request body the processor reads (more is dead-lettered as `payload_too_large`). */
export const ON_DEMAND_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** The default request queue; its dead-letter exchange and queue are named after it. */
export const ON_DEMAND_DEFAULT_QUEUE = 'flock.on-demand';
/** The fanout exchange the coordinator announces each new current version on. */
export const VERSIONS_EXCHANGE = 'flock.versions';

/** Header names (AMQP table keys). */
export const ON_DEMAND_HEADERS = {
  /** Request and reply: the tensor's shape, rows first (`[1, 784]`). */
  shape: 'flock-shape',
  /** Reply: `ok` or `error`. */
  status: 'flock-status',
  /** Reply: the version that computed it. */
  modelVersion: 'flock-model-version',
  /** Reply: rows in the batch that computed it. */
  batchSize: 'flock-batch-size',
  /** Reply: which processor answered. */
  processor: 'flock-processor',
  /** Reply: whether the broker had delivered the request before (a processor died holding it). */
  redelivered: 'flock-redelivered',
  /** Error reply and dead-lettered request: the reason code, and a message for people. */
  reason: 'flock-reason',
  message: 'flock-message',
} as const;

/** Why a request was dead-lettered (and answered with an error, when it could be). */
export const DEAD_LETTER_REASONS = [
  'missing_request_id',
  'missing_reply_to',
  'bad_content_type',
  'bad_shape',
  'payload_too_large',
  'size_mismatch',
  'shape_mismatch',
  'non_finite',
] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

/** A request id (AMQP `message_id`, echoed as the reply's `correlation_id`): what de-duplication keys on. */
export const onDemandRequestIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** A reply queue name (AMQP `reply_to`): a queue of the default exchange. */
export const replyToSchema = z.string().min(1).max(255);

/** A tensor shape in a header: rows first, every dimension positive. */
export const tensorShapeSchema = z.array(z.number().int().min(1).max(1_000_000)).min(1).max(8);

/** What a request carries besides its body. */
export const onDemandRequestSchema = z.object({
  messageId: onDemandRequestIdSchema,
  replyTo: replyToSchema,
  contentType: z.literal(ON_DEMAND_CONTENT_TYPE),
  shape: tensorShapeSchema,
});
export type OnDemandRequestMeta = z.infer<typeof onDemandRequestSchema>;

/** A successful reply's headers (the body: the first output's float32 values, row-major). */
export const onDemandOkReplySchema = z.object({
  status: z.literal('ok'),
  requestId: onDemandRequestIdSchema,
  modelVersion: z.number().int().min(1),
  shape: tensorShapeSchema,
  batchSize: z.number().int().min(1),
  processor: z.string().max(256),
  redelivered: z.boolean(),
});

/** An error reply: the request was malformed and went to the dead-letter queue. */
export const onDemandErrorReplySchema = z.object({
  status: z.literal('error'),
  requestId: onDemandRequestIdSchema,
  reason: z.enum(DEAD_LETTER_REASONS),
  message: z.string().max(1024),
  processor: z.string().max(256),
});

/** A version announcement on the fanout exchange (JSON body). */
export const versionAnnouncementSchema = z.object({ version: z.number().int().min(1) });
export type VersionAnnouncement = z.infer<typeof versionAnnouncementSchema>;
