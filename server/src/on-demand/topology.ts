/**
 * The queues of model-on-demand. Processors and clients declare the same topology with the same
 * arguments (RabbitMQ refuses a redeclaration with different ones), so both call `declareTopology`.
 *
 *   requests  <queue>        quorum queue (replicated, durable): survives a broker restart; a request
 *                            delivered more than DELIVERY_LIMIT times (a message that kills every
 *                            processor that takes it) is dead-lettered by the broker itself
 *   dead letters <queue>.dlx (fanout exchange) -> <queue>.dead (quorum queue): malformed requests, with
 *                            the reason in their `flock-reason` header (published there by the processor)
 *   replies   the requester's own exclusive, auto-delete queue (`reply_to`), through the default exchange
 */
import type { Channel } from 'amqplib';

/** Deliveries of one request at most before the broker dead-letters it (x-death reason `delivery_limit`). */
export const DELIVERY_LIMIT = 20;

export interface OnDemandQueues {
  requests: string;
  deadLetterExchange: string;
  deadLetters: string;
}

export function queuesOf(queue: string): OnDemandQueues {
  return { requests: queue, deadLetterExchange: `${queue}.dlx`, deadLetters: `${queue}.dead` };
}

export async function declareTopology(channel: Channel, queue: string): Promise<OnDemandQueues> {
  const names = queuesOf(queue);
  await channel.assertExchange(names.deadLetterExchange, 'fanout', { durable: true });
  await channel.assertQueue(names.deadLetters, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(names.deadLetters, names.deadLetterExchange, '');
  await channel.assertQueue(names.requests, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': names.deadLetterExchange, 'x-delivery-limit': DELIVERY_LIMIT },
  });
  return names;
}
