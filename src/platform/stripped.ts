// Proxies are many and long-lived, so they run from JavaScript with the types stripped once, ahead of
// time: a process that loads .ts sources carries Node's type stripper (a WASM module) and the memory it
// grew while stripping every module — about 30 MB of a sidecar's RSS, measured in bench/.
// Stripping replaces types with blanks, so lines and columns in stack traces still match the .ts files.
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SRC = path.join(ROOT, 'src');
/** Inside node_modules, so bare imports resolve to the project's own dependencies. */
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'trellis');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

/** Relative `.ts` specifiers become `.js`: the same length, so positions stay put. */
function rewriteImports(js: string): string {
  return js.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*)\.ts\2/g, '$1$2$3.js$2');
}

/**
 * The stripped copy of `src/`, made if the sources changed since the last one; returns the path of
 * `entry` (relative to the project root, e.g. `src/cli/main.ts`) inside it.
 */
export function strippedEntry(entry: string): string {
  const files = sources(SRC);
  const key = createHash('sha256').update(process.version);
  for (const f of files) {
    const st = statSync(f);
    key.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  const dir = path.join(CACHE, `js-${key.digest('hex').slice(0, 16)}`);
  const target = path.join(dir, entry.replace(/\.ts$/, '.js'));
  if (existsSync(target)) return target;

  // Built aside and renamed into place, so a concurrent `trellis up` never sees half a tree.
  const tmp = `${dir}.${process.pid}.tmp`;
  mkdirSync(CACHE, { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  const emitWarning = process.emitWarning;
  // stripTypeScriptTypes warns that it is experimental on every call; nothing a user can act on.
  process.emitWarning = () => {};
  try {
    for (const f of files) {
      const out = path.join(tmp, path.relative(ROOT, f)).replace(/\.ts$/, '.js');
      mkdirSync(path.dirname(out), { recursive: true });
      writeFileSync(out, rewriteImports(stripTypeScriptTypes(readFileSync(f, 'utf8'), { mode: 'strip' })));
    }
  } finally {
    process.emitWarning = emitWarning;
  }
  // `"type": "module"` and the version the CLI reports come from here.
  copyFileSync(path.join(ROOT, 'package.json'), path.join(tmp, 'package.json'));
  try {
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(target)) throw err;
  }
  // Older copies may still be what a running mesh restarts its proxies from: only week-old ones go.
  for (const old of readdirSync(CACHE)) {
    const p = path.join(CACHE, old);
    if (old.startsWith('js-') && Date.now() - statSync(p).mtimeMs > 7 * 86_400_000)
      rmSync(p, { recursive: true, force: true });
  }
  return target;
}
