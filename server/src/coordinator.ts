import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { applyWebHygiene } from './boundary/web-hygiene.js';
import { connectRedisFanOut, FlockIoAdapter } from './clients/io-adapter.js';
import type { FlockConfig } from './config/config.js';
import { PinoNestLogger } from './logging/logger.js';
import { ModelsService } from './models/models.service.js';
import { applyInferenceBodyParsers } from './serving/inference-body.js';
import { ServingService } from './serving/serving.service.js';
import { installPredictionFastPath } from './precompute/prediction-fast-path.js';
import { PrecomputeService } from './precompute/precompute.service.js';
import { installV2FastPath } from './serving/v2-fast-path.js';

export interface Coordinator {
  app: INestApplication;
  config: FlockConfig;
  /** http://host:port the coordinator listens on (the real port when config.port was 0). */
  url: string;
  close(): Promise<void>;
}

/**
 * Builds and starts a coordinator: REST API, OpenAPI docs, Prometheus metrics and the socket.io
 * device gateway on one HTTP server. Used by main.ts, the tests and the simulator alike.
 * Signals are the embedding program's business (main.ts closes on SIGINT/SIGTERM); close() runs
 * the shutdown hooks (an in-flight round is aborted and persisted).
 */
export async function createCoordinator(config: FlockConfig): Promise<Coordinator> {
  const redis = config.redisUrl ? await connectRedisFanOut(config.redisUrl, config.redisPrefix) : null;
  // Body parsing is set up by applyWebHygiene: JSON only, bounded.
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), { logger: new PinoNestLogger(), bodyParser: false });
  // Before the app-wide 64 KiB JSON parser: /v2 takes tensors, bounded by FLOCK_INFERENCE_MAX_BODY_BYTES.
  applyWebHygiene(app, config, () => applyInferenceBodyParsers(app, config));
  app.useWebSocketAdapter(new FlockIoAdapter(app, config, redis));
  // The infer route and prediction lookups before express (socket.io's engine later puts its own listener in front of all).
  if (config.serving.fastPath) {
    installV2FastPath(app.getHttpServer(), app.get(ServingService), config.serving);
    installPredictionFastPath(app.getHttpServer(), app.get(PrecomputeService), [...config.serving.inferenceKeys, config.operatorToken]);
  }
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Flock coordinator API')
      .setDescription('Operator API of the Flock federated learning coordinator. Send `Authorization: Bearer <operator token>`.')
      .setVersion('0.1.0')
      // Opaque random tokens, not JWTs: no bearerFormat.
      .addSecurity('bearer', {
        type: 'http',
        scheme: 'bearer',
        description: 'The operator token (FLOCK_OPERATOR_TOKEN); model downloads also take the client token',
      })
      .build(),
  );
  SwaggerModule.setup('api/docs', app, document, { jsonDocumentUrl: 'api/docs/openapi.json' });
  // The first global version must exist before devices connect: train or register it now.
  await app.get(ModelsService).ensureInitialModel();
  await app.listen(config.port, config.host);
  const { port } = app.getHttpServer().address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return {
    app,
    config,
    url: `http://${host}:${port}`,
    close: async () => {
      await app.close();
      await redis?.close();
    },
  };
}
