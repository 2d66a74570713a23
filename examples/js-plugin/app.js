// `line-match`: counts the lines of a log that match regular expressions.
//
// A tend plugin written in JavaScript and built with `jco componentize`
// (componentize-js, StarlingMonkey) against `wit/plugin.wit` (world `plugin`,
// `tend:plugin@0.1.0`). See README.md.
//
// Its input is the text to scan, typically a previous step's output:
//
// - a string: split into lines at "\n" (a "\r" before it is dropped);
// - a list of strings: one line each (a string holding "\n" is split too);
// - either of the above under a dotted `path` of a bigger object
//   (`path: "body"`).
//
// For every pattern it emits a metric `log_matches` (labelled with the
// pattern's name, and the `source` if given) counting the matching lines,
// and, when a pattern matched at least `min_count` lines, a finding of the
// pattern's severity quoting the first matching lines. Its data counts the
// matches of each pattern and keeps the first `max_lines` matching lines.
//
// It needs no grants: the only host call it makes is `host.log`.

import { log } from 'tend:plugin/host@0.1.0';

const NAME = 'line-match';
const VERSION = '0.1.0';

const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
const FLAGS = /^[imsu]*$/;
const MAX_LINE_CHARS = 500;
const DETAIL_LINES = 5;

const CONFIG_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'line-match config',
  description: 'The patterns to count in the lines of the step\'s input.',
  type: 'object',
  additionalProperties: false,
  required: ['patterns'],
  properties: {
    patterns: {
      type: 'array',
      minItems: 1,
      description: 'The patterns to look for; a line is counted once per pattern it matches.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'regex'],
        properties: {
          name: {
            type: 'string',
            pattern: '^[A-Za-z0-9_.-]+$',
            description: 'Unique name of the pattern, e.g. oom; labels its metric and keys its data.',
          },
          regex: {
            type: 'string',
            minLength: 1,
            description: 'JavaScript regular expression a line must match (anywhere in it), e.g. "Out of memory: Killed process \\\\d+".',
          },
          flags: {
            type: 'string',
            pattern: '^[imsu]*$',
            default: '',
            description: 'Regular expression flags: i (ignore case), m, s, u.',
          },
          severity: {
            enum: SEVERITIES,
            default: 'medium',
            description: 'Severity of the finding raised when the pattern matches.',
          },
          min_count: {
            type: 'integer',
            minimum: 1,
            default: 1,
            description: 'Raise the finding only when at least this many lines match.',
          },
        },
      },
    },
    path: {
      type: 'string',
      description: 'Dotted path to the text or lines inside the input, e.g. body; by default the whole input.',
    },
    source: {
      type: 'string',
      minLength: 1,
      description: 'What the lines come from, e.g. /var/log/syslog; the resource of findings and a metric label.',
    },
    max_lines: {
      type: 'integer',
      minimum: 0,
      maximum: 1000,
      default: 10,
      description: 'How many matching lines of each pattern the data keeps (the first ones).',
    },
  },
};

const SCHEMA_TEXT = JSON.stringify(CONFIG_SCHEMA);

// A step error: componentize-js turns a value thrown from `run` into the
// `err` of its `result` (a `step-error` variant: `{tag, val}`).
class StepError {
  constructor(tag, val) {
    this.tag = tag;
    this.val = val;
  }
}

const invalidConfig = (message) => new StepError('invalid-config', message);
const failed = (message) => new StepError('failed', message);

function kind(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

function expect(field, value, type) {
  const ok =
    type === 'a list' ? Array.isArray(value)
    : type === 'an object' ? kind(value) === 'an object'
    : type === 'an integer' ? Number.isInteger(value)
    : kind(value) === type;
  if (!ok) throw invalidConfig(`field \`${field}\`: expected ${type}, got ${kind(value)}`);
  return value;
}

function noOtherKeys(field, object, schema) {
  for (const key of Object.keys(object)) {
    if (!(key in schema.properties)) {
      const where = field ? `\`${field}\` has` : 'config has';
      throw invalidConfig(`${where} an unknown field \`${key}\` (known: ${Object.keys(schema.properties).join(', ')})`);
    }
  }
  for (const key of schema.required) {
    if (!(key in object)) throw invalidConfig(`field \`${field ? field + '.' : ''}${key}\` is required`);
  }
}

function parseConfig(text) {
  let raw;
  try {
    raw = text.trim() === '' ? {} : JSON.parse(text);
  } catch (e) {
    throw invalidConfig(`config is not JSON: ${e.message}`);
  }
  expect('config', raw, 'an object');
  noOtherKeys('', raw, CONFIG_SCHEMA);
  const itemSchema = CONFIG_SCHEMA.properties.patterns.items;
  const patterns = expect('patterns', raw.patterns, 'a list');
  if (patterns.length === 0) throw invalidConfig('field `patterns`: needs at least one pattern');
  const names = new Set();
  const config = {
    patterns: patterns.map((p, i) => {
      const field = `patterns[${i}]`;
      expect(field, p, 'an object');
      noOtherKeys(field, p, itemSchema);
      const name = expect(`${field}.name`, p.name, 'a string');
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) {
        throw invalidConfig(`field \`${field}.name\`: ${JSON.stringify(name)} is not a name (letters, digits, _ . -)`);
      }
      if (names.has(name)) throw invalidConfig(`field \`${field}.name\`: two patterns are named \`${name}\``);
      names.add(name);
      const source = expect(`${field}.regex`, p.regex, 'a string');
      const flags = p.flags === undefined ? '' : expect(`${field}.flags`, p.flags, 'a string');
      if (!FLAGS.test(flags)) throw invalidConfig(`field \`${field}.flags\`: ${JSON.stringify(flags)}: only i, m, s and u are allowed`);
      let regex;
      try {
        regex = new RegExp(source, flags);
      } catch (e) {
        throw invalidConfig(`field \`${field}.regex\`: pattern \`${name}\`: ${e.message}`);
      }
      const severity = p.severity === undefined ? 'medium' : expect(`${field}.severity`, p.severity, 'a string');
      if (!SEVERITIES.includes(severity)) {
        throw invalidConfig(`field \`${field}.severity\`: ${JSON.stringify(severity)} is not one of ${SEVERITIES.join(', ')}`);
      }
      const minCount = p.min_count === undefined ? 1 : expect(`${field}.min_count`, p.min_count, 'an integer');
      if (minCount < 1) throw invalidConfig(`field \`${field}.min_count\`: must be at least 1, got ${minCount}`);
      return { name, source, flags, regex, severity, minCount };
    }),
    path: raw.path === undefined ? null : expect('path', raw.path, 'a string'),
    source: raw.source === undefined ? null : expect('source', raw.source, 'a string'),
    maxLines: raw.max_lines === undefined ? 10 : expect('max_lines', raw.max_lines, 'an integer'),
  };
  if (config.maxLines < 0 || config.maxLines > 1000) {
    throw invalidConfig(`field \`max_lines\`: must be 0 to 1000, got ${config.maxLines}`);
  }
  return config;
}

// The lines to scan: the input (at `path`) as a string or a list of strings.
function inputLines(inputText, path) {
  let value;
  try {
    value = inputText.trim() === '' ? '' : JSON.parse(inputText);
  } catch (e) {
    throw failed(`input is not JSON: ${e.message}`);
  }
  if (path) {
    for (const key of path.split('.')) {
      const next =
        Array.isArray(value) && /^\d+$/.test(key) ? value[Number(key)]
        : kind(value) === 'an object' && Object.hasOwn(value, key) ? value[key]
        : undefined;
      if (next === undefined) throw failed(`input has no \`${key}\` (path '${path}')`);
      value = next;
    }
  }
  const where = path ? ` at '${path}'` : '';
  const split = (text) => {
    const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    // A trailing newline ends the last line; it does not start another.
    if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
    return lines;
  };
  if (typeof value === 'string') return value === '' ? [] : split(value);
  if (Array.isArray(value)) {
    return value.flatMap((line, i) => {
      if (typeof line !== 'string') throw failed(`input${where}: line ${i + 1} is ${kind(line)}, not a string`);
      return split(line);
    });
  }
  throw failed(`input${where} is ${kind(value)}: expected a string or a list of strings`);
}

const clip = (line) => (line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);

export const step = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description:
        'Counts the lines of a log (text or a list of lines) that match regular expressions: ' +
        'a metric per pattern, a finding per pattern that matched, and the first matching lines as data.',
      configSchema: SCHEMA_TEXT,
      capabilities: [],
    };
  },

  run(ctx, configText, inputText) {
    const config = parseConfig(configText);
    const lines = inputLines(inputText, config.path);

    const matches = config.patterns.map(() => ({ count: 0, lines: [] }));
    lines.forEach((line, index) => {
      config.patterns.forEach((pattern, p) => {
        if (pattern.regex.test(line)) {
          const m = matches[p];
          m.count += 1;
          if (m.lines.length < config.maxLines) m.lines.push({ number: index + 1, text: clip(line) });
        }
      });
    });

    const labels = config.source === null ? [] : [['source', config.source]];
    const metrics = [{ name: 'log_lines', value: lines.length, labels }];
    const findings = [];
    const data = { lines: lines.length, matched: [], patterns: {} };
    config.patterns.forEach((pattern, p) => {
      const { count } = matches[p];
      metrics.push({ name: 'log_matches', value: count, labels: [['pattern', pattern.name], ...labels] });
      data.patterns[pattern.name] = {
        count,
        severity: pattern.severity,
        lines: matches[p].lines,
        truncated: count > matches[p].lines.length,
      };
      if (count > 0) data.matched.push(pattern.name);
      if (count >= pattern.minCount) {
        const shown = matches[p].lines.slice(0, DETAIL_LINES).map((l) => `  ${l.number}: ${l.text}`);
        const more = count > shown.length ? [`  ... ${count - shown.length} more`] : [];
        findings.push({
          severity: pattern.severity,
          title: `${pattern.name}: ${count} of ${lines.length} line(s)${config.source ? ` of ${config.source}` : ''} match /${pattern.source}/${pattern.flags}`,
          detail: [`Matching lines:`, ...shown, ...more].join('\n'),
          resource: config.source ?? undefined,
        });
      }
    });

    const summary = config.patterns.map((pattern, p) => `${pattern.name} ${matches[p].count}`).join(', ');
    log('info', `${ctx.stepId}: scanned ${lines.length} line(s): ${summary}`);
    return { data: JSON.stringify(data), metrics, findings };
  },
};
