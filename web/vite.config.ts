import { defineConfig } from "vite";

// The bundle is committed (web/dist) and built into the `jixiao` binary, and
// CI rebuilds it from the sources and compares byte for byte, so the build
// must be deterministic: no source maps, no build time, content-hashed file
// names only (assets/*), relative to nothing outside web/.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
    // ECharts (bar + line + grid, tooltip, legend, canvas) is one lazily
    // loaded chunk of ~530 kB (~180 kB gzipped), fetched after the table shows.
    chunkSizeWarningLimit: 600,
    // The browsers we serve all have module preload; no polyfill to ship.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      input: {
        index: "index.html",
        bench: "bench.html",
      },
    },
  },
});
