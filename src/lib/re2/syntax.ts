// Istio hands every regex in its API to Envoy, which compiles it with RE2. What RE2 refuses, Trellis
// refuses at apply, with a message that says why, and every accepted regex is matched by re2js (a port
// of RE2/J: linear in the value for every pattern, no backtracking). The checks, in order:
//  - length, as ISTIO-SECURITY-2026-006 caps it;
//  - a walk over the RE2 syntax that names the constructs RE2 lacks (lookaround, backreferences, atomic
//    groups) and translates the rest to a JavaScript RegExp source, which V8 only parses, for precise
//    syntax errors; the RegExp is never used to match;
//  - the program size RE2 would compile, estimated over the parse tree with repeat counts expanded,
//    against the limit Istio's Envoy applies;
//  - re2js itself: what it refuses (e.g. nested repeats above 1000 in total, `\C`) the matcher could not run.

import { RE2JS } from 're2js';

/** ISTIO-SECURITY-2026-006: user regexes are capped to keep compilation cheap. */
export const MAX_REGEX_LENGTH = 1024;
/** RE2's limit on `{n,m}` counts. */
const MAX_REPEAT = 1000;
/**
 * The largest RE2 program accepted. RE2 itself fails past about 699,000 instructions (two thirds of
 * its default 8 MiB `max_mem`, 8 bytes an instruction); Istio configures Envoy to refuse regexes past
 * 32768 (`re2.max_program_size.error_level`), so a larger one would be NACKed by an Istio proxy. The
 * bound also bounds matching: the automaton's work per character grows with the program's size.
 */
export const MAX_PROGRAM_SIZE = 32768;

export class Re2SyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Re2SyntaxError';
  }
}

/** Checks `pattern` with RE2's rules and compiles it for full-value matching; throws Re2SyntaxError. */
export function parseRe2(pattern: string, ignoreCase = false): RE2JS {
  if (pattern.length > MAX_REGEX_LENGTH) {
    throw new Re2SyntaxError(
      `regex is ${pattern.length} characters long; at most ${MAX_REGEX_LENGTH} are accepted (ISTIO-SECURITY-2026-006)`,
    );
  }
  const source = translate(pattern);
  const size = programSize(pattern);
  if (size > MAX_PROGRAM_SIZE) {
    throw new Re2SyntaxError(
      `pattern too large: RE2 would compile it to about ${size} instructions; Istio's proxies refuse more than ${MAX_PROGRAM_SIZE} (re2.max_program_size.error_level); use smaller repeat counts`,
    );
  }
  try {
    new RegExp(source, 'u');
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // V8 quotes the translated source; only the reason after it means anything to the user.
    const reason = msg.slice(msg.lastIndexOf(': ') + 2);
    throw new Re2SyntaxError(`regex does not compile: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`);
  }
  try {
    return RE2JS.compile(pattern, ignoreCase ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Re2SyntaxError(`regex does not compile: ${msg.replace(/^error parsing regexp: /, '')}`);
  }
}

/** Why `pattern` is not an RE2 regex, or undefined when it is one. */
export function re2Problem(pattern: string): string | undefined {
  try {
    parseRe2(pattern);
    return undefined;
  } catch (err) {
    if (err instanceof Re2SyntaxError) return err.message;
    throw err;
  }
}

/** One group being sized: its finished alternatives, the running one, and the last atom (for a repeat). */
interface SizeFrame {
  alternatives: number;
  branches: number;
  sum: number;
  last: number;
  capture: boolean;
}

/**
 * Estimates the instructions RE2 compiles `pattern` to, the way its simplifier expands repeats:
 * x{n,m} is n copies of x and m-n nested optional ones, x* and friends add one split. A literal or
 * a class counts one (RE2 spends more on non-ASCII classes, so this is a lower bound). The syntax
 * has already been checked by `translate`.
 */
function programSize(p: string): number {
  const stack: SizeFrame[] = [{ alternatives: 0, branches: 0, sum: 0, last: 0, capture: false }];
  const top = () => stack[stack.length - 1];
  const atom = (n: number) => {
    top().sum += n;
    top().last = n;
  };
  const repeat = (n: number) => {
    const f = top();
    f.sum += n - f.last;
    f.last = n;
  };
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === '\\') {
      if (p[i + 1] === 'Q') {
        const end = p.indexOf('\\E', i + 2);
        const literal = [...p.slice(i + 2, end < 0 ? p.length : end)].length;
        atom(literal);
        i = end < 0 ? p.length : end + 2;
        continue;
      }
      const m = /^\\(?:[pP](?:\{[^}]*\}|.)|x(?:\{[^}]*\}|..)|[0-7]{1,3}|.)/su.exec(p.slice(i))!;
      atom(1);
      i += m[0].length;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (p[j] === '^') j++;
      if (p[j] === ']') j++;
      while (j < p.length && p[j] !== ']') {
        if (p[j] === '\\') j += 2;
        else if (p.startsWith('[:', j) && p.indexOf(':]', j + 2) > 0) j = p.indexOf(':]', j + 2) + 2;
        else j++;
      }
      atom(1);
      i = j + 1;
      continue;
    }
    if (c === '(') {
      const flagsOnly = /^\(\?[imsU-]*\)/.exec(p.slice(i));
      if (flagsOnly) {
        i += flagsOnly[0].length;
        continue;
      }
      const opener = /^\((?:\?(?:P?<[^>]*>|[imsU-]*:))?/.exec(p.slice(i))!;
      stack.push({ alternatives: 0, branches: 0, sum: 0, last: 0, capture: !opener[0].includes(':') });
      i += opener[0].length;
      continue;
    }
    if (c === '|' || c === ')') {
      const f = top();
      f.alternatives += f.sum;
      f.branches++;
      f.sum = 0;
      f.last = 0;
      if (c === ')' && stack.length > 1) {
        stack.pop();
        atom(f.alternatives + f.branches - 1 + (f.capture ? 2 : 0));
      }
      i++;
      continue;
    }
    if (c === '*' || c === '+' || c === '?') {
      repeat(top().last + 1);
      i += p[i + 1] === '?' ? 2 : 1;
      continue;
    }
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}\??/.exec(p.slice(i));
      if (m) {
        const min = Number(m[1]);
        const x = top().last;
        if (m[2] === undefined) repeat(x * min);
        else if (m[3] === '') repeat(x * Math.max(min, 1) + 1);
        else repeat(x * min + (Number(m[3]) - min) * (x + 1));
        i += m[0].length;
        continue;
      }
    }
    atom(1);
    i++;
  }
  const f = stack[0];
  return f.alternatives + f.sum + f.branches;
}

const posixClasses: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\u{0}-\\u{7f}',
  blank: '\\t ',
  cntrl: '\\u{0}-\\u{1f}\\u{7f}',
  digit: '0-9',
  graph: '\\u{21}-\\u{7e}',
  lower: 'a-z',
  print: '\\u{20}-\\u{7e}',
  punct: '\\u{21}-\\u{2f}\\u{3a}-\\u{40}\\u{5b}-\\u{60}\\u{7b}-\\u{7e}',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const generalCategories = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(
    ' ',
  ),
);

/** One open group: the `(?flags)` groups opened inside it, to close with it (RE2 scopes them so). */
interface Frame {
  flagGroups: string[];
}

function translate(p: string): string {
  let out = '';
  const stack: Frame[] = [{ flagGroups: [] }];
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === '\\') {
      const [text, used] = translateEscape(p, i, false);
      out += text;
      i += used;
      continue;
    }
    if (c === '[') {
      const [text, used] = charClass(p, i);
      out += text;
      i += used;
      continue;
    }
    if (c === '(') {
      const [text, used, flags] = groupOpen(p, i);
      i += used;
      if (flags !== undefined) {
        stack[stack.length - 1].flagGroups.push(flags);
        out += `(?${flags}:`;
      } else {
        stack.push({ flagGroups: [] });
        out += text;
      }
      continue;
    }
    if (c === ')') {
      const frame = stack.length > 1 ? stack.pop()! : { flagGroups: [] };
      out += `${')'.repeat(frame.flagGroups.length)})`;
      i++;
      continue;
    }
    if (c === '|') {
      // `a(?i)b|c` keeps `i` on the `c` branch: close the flag groups and reopen them after the bar.
      const flags = stack[stack.length - 1].flagGroups;
      out += `${')'.repeat(flags.length)}|${flags.map((f) => `(?${f}:`).join('')}`;
      i++;
      continue;
    }
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
      if (!m) {
        out += '\\{'; // RE2 reads a brace that starts no repetition as a literal
        i++;
        continue;
      }
      const min = Number(m[1]);
      const max = m[3] ? Number(m[3]) : min;
      if (min > MAX_REPEAT || max > MAX_REPEAT) {
        throw new Re2SyntaxError(`repetition ${m[0]} exceeds RE2's limit of ${MAX_REPEAT}`);
      }
      if (m[3] && max < min) throw new Re2SyntaxError(`invalid repetition ${m[0]}: minimum above maximum`);
      out += m[0];
      i += m[0].length;
      continue;
    }
    if (c === '}' || c === ']') {
      out += `\\${c}`;
      i++;
      continue;
    }
    out += c;
    i++;
  }
  out += ')'.repeat(stack[0].flagGroups.length);
  if (stack.length > 1) throw new Re2SyntaxError('regex does not compile: missing closing )');
  return out;
}

/** Translates `(` and what follows; `flags` is set for a bare `(?i)` that scopes the rest of the group. */
function groupOpen(p: string, i: number): [string, number, string | undefined] {
  if (p[i + 1] !== '?') return ['(', 1, undefined];
  const rest = p.slice(i + 2);
  const unsupported = (what: string): never => {
    throw new Re2SyntaxError(
      `${what} is not supported: Istio evaluates regexes with RE2, which has no lookaround, backreferences or atomic groups; rewrite the pattern without it`,
    );
  };
  if (rest.startsWith('=')) unsupported('lookahead (?=...)');
  if (rest.startsWith('!')) unsupported('negative lookahead (?!...)');
  if (rest.startsWith('<=')) unsupported('lookbehind (?<=...)');
  if (rest.startsWith('<!')) unsupported('negative lookbehind (?<!...)');
  if (rest.startsWith('>')) unsupported('atomic group (?>...)');
  if (rest.startsWith('P=') || rest.startsWith('P>')) unsupported('named backreference (?P=name)');
  if (rest.startsWith('P<')) return ['(?<', 4, undefined];
  if (rest.startsWith('<') || rest.startsWith(':')) return [`(?${rest[0]}`, 3, undefined];
  const m = /^([imsU]*(?:-[imsU]*)?)([:)])/.exec(rest);
  if (!m || m[1] === '' || m[1] === '-') {
    throw new Re2SyntaxError(`regex does not compile: invalid or unsupported group syntax at offset ${i}`);
  }
  if (m[1].includes('U')) {
    throw new Re2SyntaxError(
      'the ungreedy flag (?U) is not supported: use lazy quantifiers such as *? instead',
    );
  }
  const flags = m[1].endsWith('-') ? m[1].slice(0, -1) : m[1];
  const used = 2 + m[0].length;
  return m[2] === ':' ? [`(?${flags}:`, used, undefined] : ['', used, flags];
}

/** Translates a bracketed class starting at `[`. */
function charClass(p: string, start: number): [string, number] {
  let out = '[';
  let i = start + 1;
  if (p[i] === '^') {
    out += '^';
    i++;
  }
  if (p[i] === ']') {
    out += '\\]'; // a leading `]` is a literal in RE2
    i++;
  }
  while (i < p.length && p[i] !== ']') {
    if (p[i] === '\\') {
      const [text, used] = translateEscape(p, i, true);
      out += text;
      i += used;
      continue;
    }
    if (p.startsWith('[:', i)) {
      const end = p.indexOf(':]', i + 2);
      if (end > 0) {
        const name = p.slice(i + 2, end);
        if (name.startsWith('^')) {
          throw new Re2SyntaxError(
            `negated POSIX class [:${name}:] is not supported; use [^[:${name.slice(1)}:]]`,
          );
        }
        const body = posixClasses[name];
        if (!body) throw new Re2SyntaxError(`unknown POSIX class [:${name}:]`);
        out += body;
        i = end + 2;
        continue;
      }
    }
    out += p[i] === '[' ? '\\[' : p[i];
    i++;
  }
  if (i >= p.length) throw new Re2SyntaxError('regex does not compile: missing closing ]');
  return [`${out}]`, i + 1 - start];
}

function codePoint(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

/** Translates the escape at `p[i] === '\\'`; returns the text and how many characters it used. */
function translateEscape(p: string, i: number, inClass: boolean): [string, number] {
  const c = p[i + 1];
  if (c === undefined) throw new Re2SyntaxError('regex does not compile: trailing backslash');
  if (c >= '1' && c <= '9') {
    const next = p[i + 2];
    if (c > '7' || next === undefined || next < '0' || next > '7') {
      throw new Re2SyntaxError(
        `backreference \\${c} is not supported: Istio evaluates regexes with RE2, which has no backreferences`,
      );
    }
  }
  if (c >= '0' && c <= '7') {
    const m = /^[0-7]{1,3}/.exec(p.slice(i + 1))!;
    return [codePoint(Number.parseInt(m[0], 8)), 1 + m[0].length];
  }
  switch (c) {
    case 'k':
      if (p[i + 2] === '<') {
        throw new Re2SyntaxError(
          'named backreference \\k<...> is not supported: Istio evaluates regexes with RE2, which has no backreferences',
        );
      }
      break;
    case 'x': {
      const m = /^x(?:\{([0-9a-fA-F]{1,6})\}|([0-9a-fA-F]{2}))/.exec(p.slice(i + 1));
      if (!m) throw new Re2SyntaxError('regex does not compile: invalid \\x escape');
      const cp = Number.parseInt(m[1] ?? m[2], 16);
      if (cp > 0x10ffff) throw new Re2SyntaxError(`regex does not compile: \\x{${m[1]}} is beyond Unicode`);
      return [codePoint(cp), 1 + m[0].length];
    }
    case 'p':
    case 'P': {
      const m = /^[pP](?:\{(\^?)([A-Za-z_]+)\}|([A-Za-z]))/.exec(p.slice(i + 1));
      if (!m) throw new Re2SyntaxError(`regex does not compile: invalid \\${c} escape`);
      const negate = (c === 'P') !== (m[1] === '^');
      const name = m[2] ?? m[3];
      if (name === 'Any') {
        if (negate) throw new Re2SyntaxError('regex does not compile: \\P{Any} matches nothing');
        const any = '\\u{0}-\\u{10ffff}';
        return [inClass ? any : `[${any}]`, 1 + m[0].length];
      }
      const prop = generalCategories.has(name) ? name : `Script=${name}`;
      return [`\\${negate ? 'P' : 'p'}{${prop}}`, 1 + m[0].length];
    }
    case 'Q': {
      const end = p.indexOf('\\E', i + 2);
      const literal = p.slice(i + 2, end < 0 ? p.length : end);
      const text = [...literal].map((ch) => (/[A-Za-z0-9]/.test(ch) ? ch : codePoint(ch.codePointAt(0)!)));
      return [text.join(''), end < 0 ? p.length - i : end + 2 - i];
    }
    case 'A':
    case 'z':
      if (inClass) throw new Re2SyntaxError(`regex does not compile: \\${c} inside a character class`);
      return [c === 'A' ? '(?<![\\s\\S])' : '(?![\\s\\S])', 2];
    case 'C':
      return [inClass ? '\\s\\S' : '[\\s\\S]', 2];
    case 'a':
      return [codePoint(7), 2];
  }
  const cp = c.codePointAt(0)!;
  if (cp < 0x80 && !/[A-Za-z0-9]/.test(c)) return [codePoint(cp), 2]; // escaped punctuation is a literal
  return [`\\${c}`, 2];
}
