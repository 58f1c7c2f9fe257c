// Multi-document YAML/JSON decoding that remembers where every field came from, so a validation
// error can name the file and line of the offending field.
import { isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, Scalar } from 'yaml';
import type { Issue } from '../lib/errors.ts';

export interface Position {
  line: number;
  column: number;
}

export interface DecodedDocument {
  /** The plain value of the document (objects, arrays, scalars). */
  value: unknown;
  file?: string;
  /** Line where the document starts. */
  line: number;
  /** Field path (`spec.http[0].match`) → position of its value. */
  positions: Map<string, Position>;
}

export interface DecodeResult {
  documents: DecodedDocument[];
  issues: Issue[];
}

export function decodeDocuments(text: string, file?: string): DecodeResult {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const docs = Array.isArray(parsed) ? parsed : [parsed];
  const documents: DecodedDocument[] = [];
  const issues: Issue[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const pos = lineCounter.linePos(err.pos[0]);
        issues.push({
          file,
          line: pos.line,
          column: pos.col,
          path: '',
          message: `invalid YAML: ${firstLine(err.message)}`,
        });
      }
      continue;
    }
    goYamlFlowScalars(doc.contents as Node, text);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document between `---` separators
    const positions = new Map<string, Position>();
    collect(doc.contents as Node, '', positions, lineCounter);
    const start = doc.contents?.range?.[0] ?? 0;
    documents.push({ value, file, line: lineCounter.linePos(start).line, positions });
  }
  return { documents, issues };
}

/**
 * Kubernetes decodes with go-yaml, where `:` ends a plain scalar only when a blank follows it, in
 * flow collections too; YAML 1.2 (the `yaml` library) also ends it before `,`, `]` or `}`. So
 * `[1.2.3.4, 2001:db8::]`, as Istio's examples write IPv6 addresses, is a list of two strings to
 * Kubernetes but holds the map `{"2001:db8:": null}` here. Such an item — an implicit key whose
 * `:` a flow indicator follows at once — becomes the string go-yaml reads.
 */
function goYamlFlowScalars(node: Node | null, text: string): void {
  if (isMap(node)) for (const pair of node.items) goYamlFlowScalars(pair.value as Node | null, text);
  else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      // `[k: v]` is a flow map of one pair inside the sequence.
      const pair = node.flow && isMap(item) && item.items.length === 1 ? item.items[0] : undefined;
      if (pair && isScalar(pair.key) && pair.key.range) {
        const [start, end] = pair.key.range;
        const v = pair.value;
        const empty = v == null || (isScalar(v) && v.value == null && !v.source);
        if (empty && text[end] === ':' && ',]}'.includes(text[end + 1] ?? '')) {
          const s = new Scalar(text.slice(start, end + 1));
          s.range = [start, end + 1, end + 1];
          node.items[i] = s;
          return;
        }
      }
      goYamlFlowScalars(item as Node, text);
    });
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

function collect(node: Node, path: string, out: Map<string, Position>, lc: LineCounter): void {
  if (node.range) {
    const p = lc.linePos(node.range[0]);
    out.set(path, { line: p.line, column: p.col });
  }
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const childPath = path ? `${path}.${key}` : key;
      if (isScalar(pair.key) && pair.key.range) {
        const p = lc.linePos(pair.key.range[0]);
        out.set(childPath, { line: p.line, column: p.col });
      }
      if (pair.value && typeof pair.value === 'object' && 'range' in pair.value) {
        const before = out.get(childPath);
        collect(pair.value as Node, childPath, out, lc);
        // Prefer the key's position for the field itself: that is where a reader looks.
        if (before) out.set(childPath, before);
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      if (item && typeof item === 'object' && 'range' in item)
        collect(item as Node, `${path}[${i}]`, out, lc);
    });
  }
}

/** The position of a field, or of its nearest ancestor that has one. */
export function positionOf(doc: Pick<DecodedDocument, 'positions' | 'line'>, path: string): Position {
  let p = path;
  for (;;) {
    const hit = doc.positions.get(p);
    if (hit) return hit;
    if (p === '') return { line: doc.line, column: 1 };
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    p = cut <= 0 ? '' : p.slice(0, cut);
  }
}
