// Built offline (`vite build`) and served by the FastAPI app from dist/; the dev server is not used.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { defineConfig } from 'vite';

const COMPRESSIBLE = /\.(js|mjs|css|wasm|json|svg|html|txt)$/;

// Issue 17 point 14: each hashed asset also as NAME.br (Brotli, quality 11: too slow to do per start
// of the service, done once here); the service sends it to browsers that accept br.
function brotliAssets() {
  let outDir = 'dist';
  return {
    name: 'curate-brotli-assets',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      // every file of assets/, the workers' chunks and the codecs' wasm included (not all are in this bundle)
      for (const name of readdirSync(join(outDir, 'assets'))) {
        if (!COMPRESSIBLE.test(name)) continue;
        const path = join(outDir, 'assets', name);
        const raw = readFileSync(path);
        if (raw.length <= 1024) continue;
        const packed = brotliCompressSync(raw, { params: {
          [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length,
          [zlib.BROTLI_PARAM_MODE]: name.endsWith('.wasm') ? zlib.BROTLI_MODE_GENERIC : zlib.BROTLI_MODE_TEXT } });
        if (packed.length < raw.length) writeFileSync(`${path}.br`, packed);
      }
    },
  };
}

// Issue 17 point 14: Cornerstone's loggers (the loglevel package, also bundled inside dcmjs) are made while
// its modules load, and each asks the browser for document.cookie when localStorage holds no level for
// it: a synchronous call to the browser process, up to 0.1 s of the first case's main-thread time in
// Chromium on a busy machine. Levels are never kept in cookies here, so loglevel's cookie fallback reads
// an empty string instead (levels set in localStorage still work).
function loglevelWithoutCookieReads() {
  const READ = 'var cookie = window.document.cookie;';
  return {
    name: 'curate-loglevel-without-cookie-reads',
    transform(code, id) {
      if (!/[\\/]node_modules[\\/](loglevel|dcmjs)[\\/]/.test(id) || !code.includes(READ)) return null;
      return { code: code.replace(READ, "var cookie = '';"), map: null };
    },
  };
}

export default defineConfig({
  base: '/',
  // manifest: the service announces the viewer's chunks (annotation/app.py viewer_chunks)
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 6000, sourcemap: false, manifest: true },
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
  plugins: [loglevelWithoutCookieReads(), brotliAssets()],
});
