import { Module } from '@nestjs/common';
import { UploadEndpoints } from './upload-endpoints.js';

/** The upload endpoints and their tickets: shared by the round engine (plans) and the upload listener (clients module). */
@Module({ providers: [UploadEndpoints], exports: [UploadEndpoints] })
export class UploadEndpointsModule {}
