import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Controller, Get, NotFoundException, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';

interface Asset {
  path: string;
  type: string;
}

const require = createRequire(import.meta.url);
/** The page's own files: src/dashboard/public in development, dist/dashboard/public once built. */
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const UPLOT_DIR = join(dirname(require.resolve('uplot/package.json')), 'dist');
const SOCKET_IO_DIR = join(dirname(require.resolve('socket.io-client/package.json')), 'dist');

/** Everything under /dashboard/assets/: the page's script and styles, and the two libraries it loads. */
const ASSETS: Record<string, Asset> = {
  'dashboard.js': { path: join(PUBLIC_DIR, 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  'dashboard.css': { path: join(PUBLIC_DIR, 'dashboard.css'), type: 'text/css; charset=utf-8' },
  'uplot.esm.js': { path: join(UPLOT_DIR, 'uPlot.esm.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.min.css': { path: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
  'socket.io.esm.min.js': { path: join(SOCKET_IO_DIR, 'socket.io.esm.min.js'), type: 'text/javascript; charset=utf-8' },
};

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
  asset(@Param('file') file: string, @Res() res: Response): void {
    const asset = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!asset) throw new NotFoundException(`no dashboard asset ${file.slice(0, 64)}`);
    res
      .status(200)
      .type(asset.type)
      .set({ 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' })
      .send(readFileSync(asset.path));
  }
}
