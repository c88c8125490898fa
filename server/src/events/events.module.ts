import { Module } from '@nestjs/common';
import { FlockEventBus } from './event-bus.js';

/** The in-process event bus. A leaf: every feature module may import it, to emit and listen without importing another feature. */
@Module({ providers: [FlockEventBus], exports: [FlockEventBus] })
export class EventsModule {}
