// Reads `-f` arguments into API sources: a file, a directory (every *.yaml, *.yml, *.json, sorted;
// subdirectories only with -R) or `-` for stdin. Each source keeps the path as given, so issues point
// at the file the user named.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Source } from '../controlplane/api-server.ts';
import { TrellisError } from '../lib/errors.ts';

const MANIFEST = /\.(ya?ml|json)$/i;
export const STDIN = '<stdin>';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function filesIn(dir: string, recursive: boolean): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  const out: string[] = [];
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...(await filesIn(p, true)));
    } else if (MANIFEST.test(e.name)) {
      out.push(p);
    }
  }
  return out;
}

export async function readSources(
  names: readonly string[],
  opts: { recursive?: boolean; stdin?: () => Promise<string> } = {},
): Promise<Source[]> {
  const sources: Source[] = [];
  let usedStdin = false;
  for (const name of names) {
    if (name === '-') {
      if (usedStdin) throw new TrellisError('TRL_INVALID_ARGUMENT', '-f - (stdin) can be given only once');
      usedStdin = true;
      sources.push({ file: STDIN, text: await (opts.stdin ?? readStdin)() });
      continue;
    }
    let isDir: boolean;
    try {
      isDir = (await stat(name)).isDirectory();
    } catch {
      throw new TrellisError('TRL_FILE_NOT_FOUND', `${name}: no such file or directory`);
    }
    if (!isDir) {
      sources.push({ file: name, text: await readFile(name, 'utf8') });
      continue;
    }
    const files = await filesIn(name, opts.recursive === true);
    if (files.length === 0) {
      throw new TrellisError(
        'TRL_FILE_NOT_FOUND',
        `${name}: no *.yaml, *.yml or *.json files in this directory${opts.recursive ? '' : ' (use -R for subdirectories)'}`,
      );
    }
    for (const f of files) sources.push({ file: f, text: await readFile(f, 'utf8') });
  }
  return sources;
}
