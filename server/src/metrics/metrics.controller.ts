import { Controller, Get, Header, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorGuard } from '../auth/auth.js';
import { errorBodySchema } from '../contract/index.js';
import { zodToOpenApi } from '../operators/zod-validation.js';
import { MetricsService } from './metrics.service.js';

@ApiTags('metrics')
@ApiBearerAuth()
@UseGuards(OperatorGuard)
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ operationId: 'getMetrics', summary: 'Prometheus metrics (operator token required)' })
  @ApiProduces('text/plain')
  @ApiResponse({ status: 200, description: 'The Prometheus text exposition format', schema: { type: 'string' } })
  @ApiResponse({ status: 401, description: 'Missing or wrong token', content: { 'application/json': { schema: zodToOpenApi(errorBodySchema, 'output') } } })
  async scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
