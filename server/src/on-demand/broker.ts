import { connect, type ChannelModel } from 'amqplib';

/**
 * A connection to the broker. TCP_NODELAY on: requests and replies are small messages each side
 * waits for, which Nagle's algorithm would hold back (amqplib leaves it off by default).
 */
export function connectBroker(amqpUrl: string): Promise<ChannelModel> {
  return connect(amqpUrl, { noDelay: true });
}
