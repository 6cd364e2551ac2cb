// Copies the non-TypeScript files the runtime reads (Lua scripts) next to the compiled code.
import { cpSync } from 'node:fs';

cpSync(new URL('../src/shared/lua', import.meta.url), new URL('../dist/shared/lua', import.meta.url), { recursive: true });
