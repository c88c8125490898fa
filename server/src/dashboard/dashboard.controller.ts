import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Controller, Get, NotFoundException, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { dashboardAssetNameSchema } from '../contract/operators.js';

interface Asset {
  path: string;
  type: string;
}

const require = createRequire(import.meta.url);
/** The page's own files: src/dashboard/public in development, dist/dashboard/public once built. */
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const UPLOT_DIR = join(dirname(require.resolve('uplot/package.json')), 'dist');
const SOCKET_IO_DIR = join(dirname(require.resolve('socket.io-client/package.json')), 'dist');
const SDK_PROTOCOL_DIR = dirname(require.resolve('@flock/client-sdk/protocol'));
// csv-stringify's browser build: one self-contained ES module (the rounds' CSV export).
const CSV_STRINGIFY_SYNC = require.resolve('csv-stringify/browser/esm/sync');

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** What the page's import map points at: the chart library, the socket.io client, the protocol's round statuses, the CSV writer. */
const LIBRARIES: Record<string, Asset> = {
  'uplot.esm.js': { path: join(UPLOT_DIR, 'uPlot.esm.js'), type: JS },
  'uplot.min.css': { path: join(UPLOT_DIR, 'uPlot.min.css'), type: CSS },
  'socket.io.esm.min.js': { path: join(SOCKET_IO_DIR, 'socket.io.esm.min.js'), type: JS },
  // One definition of the round statuses for coordinator, SDK and page (the compiled module imports nothing).
  'round-status.js': { path: join(SDK_PROTOCOL_DIR, 'round-status.js'), type: JS },
  'csv-stringify-sync.js': { path: CSV_STRINGIFY_SYNC, type: JS },
};

/** The page's own modules and styles: a plain file name (no path) ending in .js or .css. */
const PAGE_FILE = /^[a-z0-9-]+\.(js|css)$/;

/** Everything under /dashboard/assets/: a library above, or one of the page's modules and styles in PUBLIC_DIR. */
function findAsset(file: string): Asset | undefined {
  if (Object.hasOwn(LIBRARIES, file)) return LIBRARIES[file];
  const kind = PAGE_FILE.exec(file)?.[1];
  const path = join(PUBLIC_DIR, file);
  if (!kind || !existsSync(path)) return undefined;
  return { path, type: kind === 'js' ? JS : CSS };
}

interface Page {
  html: Buffer;
  csp: string;
}

/** The HTML shell, with a Content-Security-Policy that allows its one inline script (the import map) by hash. */
function loadPage(): Page {
  const html = readFileSync(join(PUBLIC_DIR, 'index.html'));
  const hashes = [...html.toString('utf8').matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    (match) => `'sha256-${createHash('sha256').update(match[1]!).digest('base64')}'`,
  );
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${hashes.join(' ')}`,
    "style-src 'self' 'unsafe-inline'",
    "connect-src 'self' ws: wss:",
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return { html, csp };
}

/**
 * The operator dashboard's static shell. It is served without a token and holds no data: the page
 * asks for the operator token, then gets data over the `/operators` socket and the REST API.
 * Files are read on each request (they are small) so that edits show without a restart.
 */
@ApiExcludeController()
@Controller('dashboard')
export class DashboardController {
  @Get()
  page(@Res() res: Response): void {
    const { html, csp } = loadPage();
    res
      .status(200)
      .type('text/html; charset=utf-8')
      .set({
        'Cache-Control': 'no-store',
        'Content-Security-Policy': csp,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
      })
      .send(html);
  }

  @Get('assets/:file')
  asset(@Param('file') file: unknown, @Res() res: Response): void {
    const name = dashboardAssetNameSchema.safeParse(file);
    const asset = name.success ? findAsset(name.data) : undefined;
    if (!asset) throw new NotFoundException(`no dashboard asset ${String(file).slice(0, 64)}`);
    res.status(200).type(asset.type).set({ 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' }).send(readFileSync(asset.path));
  }
}
