import { Module } from '@nestjs/common';
import { RoundsModule } from '../rounds/rounds.module.js';
import { UploadEndpointsModule } from './upload-endpoints.module.js';
import { UploadIngress } from './upload-ingress.service.js';

/** Uploads over HTTP: the listener's worker thread and its hand-off to the round engine. */
@Module({
  imports: [RoundsModule, UploadEndpointsModule],
  providers: [UploadIngress],
})
export class UploadsModule {}
