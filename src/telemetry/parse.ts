/**
 * A small, strict parser for the Prometheus text exposition format 0.0.4. It exists so tests can check
 * render() by meaning rather than by string, and so the CLI can read a proxy's /metrics; strictness is the
 * point: anything a real Prometheus would reject or misread (bad escapes, ungrouped families, TYPE after
 * samples, a missing final newline) throws with the offending line number.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TIMESTAMP = /^-?\d+$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

export function parsePrometheusText(text: string): Sample[] {
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition text must end with a newline');
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  // The format requires each family's lines to form one contiguous group.
  const closed = new Set<string>();
  const withSamples = new Set<string>();
  let current: string | undefined;
  const enter = (family: string, lineNo: number): void => {
    if (family === current) return;
    if (closed.has(family)) throw lineError(lineNo, `lines for ${family} are not grouped together`);
    if (current !== undefined) closed.add(current);
    current = family;
  };

  const lines = text.split('\n');
  lines.pop(); // the empty string after the final newline
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (/^[ \t]*$/.test(line)) return;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (m === null) return; // plain comment
      const [, keyword, name, rest = ''] = m;
      if (!fullMatch(METRIC_NAME, name)) throw lineError(lineNo, `invalid metric name ${name}`);
      enter(name, lineNo);
      if (keyword === 'HELP') {
        if (helps.has(name)) throw lineError(lineNo, `second HELP for ${name}`);
        helps.add(name);
        unescapeHelp(rest, lineNo);
      } else {
        if (types.has(name)) throw lineError(lineNo, `second TYPE for ${name}`);
        if (withSamples.has(name)) throw lineError(lineNo, `TYPE for ${name} after its samples`);
        const type = rest.trim();
        if (!TYPES.has(type)) throw lineError(lineNo, `unknown type ${JSON.stringify(type)}`);
        types.set(name, type);
      }
      return;
    }
    const sample = parseSample(line, lineNo);
    const family = familyOf(sample.name, types);
    enter(family, lineNo);
    withSamples.add(family);
    const type = types.get(family);
    // Summaries use the bare name for quantiles; histograms have no bare sample.
    if (type === 'histogram' && sample.name === family) {
      throw lineError(lineNo, `histogram ${family} has a sample without a suffix`);
    }
    if (type === 'histogram' && sample.name === `${family}_bucket`) {
      const le = sample.labels.le;
      if (le === undefined || !(FLOAT.test(le) || le === '+Inf')) {
        throw lineError(lineNo, `histogram bucket without a valid le label`);
      }
    }
    samples.push(sample);
  });
  return samples;
}

function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const suffix of suffixes) {
      if (name.endsWith(suffix)) {
        const base = name.slice(0, -suffix.length);
        if (types.get(base) === type) return base;
      }
    }
  }
  return name;
}

function parseSample(line: string, lineNo: number): Sample {
  const nameMatch = METRIC_NAME.exec(line);
  if (nameMatch === null) throw lineError(lineNo, 'expected a metric name');
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = Object.create(null);

  if (line[pos] === '{') {
    pos++;
    for (;;) {
      pos = skipBlanks(line, pos);
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const ln = LABEL_NAME.exec(line.slice(pos));
      if (ln === null) throw lineError(lineNo, `expected a label name at column ${pos + 1}`);
      const label = ln[0];
      pos = skipBlanks(line, pos + label.length);
      if (line[pos] !== '=') throw lineError(lineNo, `expected "=" after ${label}`);
      pos = skipBlanks(line, pos + 1);
      if (line[pos] !== '"') throw lineError(lineNo, `expected a quoted value for ${label}`);
      const [value, end] = readQuoted(line, pos + 1, lineNo);
      if (Object.hasOwn(labels, label)) throw lineError(lineNo, `duplicate label ${label}`);
      labels[label] = value;
      pos = skipBlanks(line, end);
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw lineError(lineNo, `expected "," or "}" after ${label}`);
    }
  }

  // One or more blanks, a value, and optionally blanks and an integer timestamp (accepted, not returned).
  const rest = line.slice(pos);
  const m = /^[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*$/.exec(rest);
  if (m === null) throw lineError(lineNo, 'expected a value after the metric name and labels');
  const value = parseValue(m[1]);
  if (value === undefined) throw lineError(lineNo, `invalid value ${JSON.stringify(m[1])}`);
  if (m[2] !== undefined && !TIMESTAMP.test(m[2])) throw lineError(lineNo, `invalid timestamp ${m[2]}`);
  return { name, labels: { ...labels }, value };
}

/** Reads a label value whose opening quote is just before `start`; returns the value and the index past the closing quote. */
function readQuoted(line: string, start: number, lineNo: number): [string, number] {
  let out = '';
  for (let i = start; i < line.length; i++) {
    const c = line[i];
    if (c === '"') return [out, i + 1];
    if (c === '\\') {
      const next = line[++i];
      if (next === '\\' || next === '"') out += next;
      else if (next === 'n') out += '\n';
      else throw lineError(lineNo, `invalid escape \\${next ?? ''} in label value`);
    } else {
      out += c;
    }
  }
  throw lineError(lineNo, 'unterminated label value');
}

function unescapeHelp(text: string, lineNo: number): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw lineError(lineNo, `invalid escape \\${c} in HELP`);
  });
}

function parseValue(s: string): number | undefined {
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  return FLOAT.test(s) ? Number(s) : undefined;
}

function skipBlanks(line: string, pos: number): number {
  while (line[pos] === ' ' || line[pos] === '\t') pos++;
  return pos;
}

function fullMatch(re: RegExp, s: string): boolean {
  const m = re.exec(s);
  return m !== null && m[0].length === s.length;
}

function lineError(lineNo: number, message: string): Error {
  return new Error(`line ${lineNo}: ${message}`);
}
