/// <reference types="vitest/config" />
// Builds the dashboard into the Python package (src/agenttracer/ui_dist), which `agenttracer up` serves.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

const outDir = fileURLToPath(new URL("../src/agenttracer/ui_dist", import.meta.url));

export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 1200 },
  server: { port: 18500, strictPort: true },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
