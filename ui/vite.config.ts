import { defineConfig } from "vite";

// Tauri serves the built files itself; a fixed dev port lets tauri.conf.json's
// devUrl point at `npm run dev`.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
});
