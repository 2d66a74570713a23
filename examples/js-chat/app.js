// `chat-notify`: posts an escalation to a chat tool's incoming webhook.
//
// A tend plugin written in JavaScript and built with componentize-js
// (StarlingMonkey) against `wit/plugin.wit` (world `plugin`,
// `tend:plugin@0.1.0`). See README.md.
//
// Its input is what to announce, typically built from earlier steps:
//
// - an escalation: `{severity, title, detail, runbook, run_id, run_url,
//   step_id, resource, status, dedup_key}` (only `severity` and a `title`
//   are required; `message` or `text` stand for `title`, so the JSON body of
//   tend's own webhook notifications is one too);
// - a list of findings (`${{ steps.check.findings }}`): one message at the
//   highest severity, listing them; an empty list posts nothing;
// - either of the above under a dotted `path` of a bigger object.
//
// It formats the message for Slack (Block Kit), Microsoft Teams (an
// Adaptive Card), Mattermost (Slack-style attachments) or as plain JSON,
// and POSTs it through the host's `http-fetch` to the webhook `url` (or the
// URL kept in the secret `url_secret`; chat webhook URLs carry their token),
// with an optional bearer token from `token_secret`. The step needs the
// webhook's host in its `hosts` grant. 2xx is success; 429 and 5xx are
// `retryable` (tend's retry policy tries again); other answers are `failed`.

import { httpFetch, log, secret } from 'tend:plugin/host@0.1.0';

const NAME = 'chat-notify';
const VERSION = '0.1.0';

const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
const FORMATS = ['slack', 'teams', 'mattermost', 'json'];
const STATUSES = ['triggered', 'acknowledged', 'resolved'];
/// By default a post may take 10 seconds.
const DEFAULT_TIMEOUT_MS = 10000;
/// Findings listed in one message; the rest are counted.
const MAX_FINDINGS_LISTED = 10;
/// Slack's limits: header text 150 characters, section text 3000, a field 2000.
const SLACK_HEADER_MAX = 150;
const SLACK_SECTION_MAX = 3000;
const SLACK_FIELD_MAX = 2000;
/// How much of an error answer's body an error message quotes.
const ANSWER_QUOTE_MAX = 200;

/// Colors of Mattermost/Slack attachments and Teams text, by severity.
const COLORS = { info: '#439fe0', low: '#439fe0', medium: '#daa038', high: '#d00000', critical: '#a00000' };
const TEAMS_COLORS = { info: 'Default', low: 'Default', medium: 'Warning', high: 'Attention', critical: 'Attention' };

const CONFIG_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'chat-notify config',
  description: 'Where to post the escalation and in which format.',
  type: 'object',
  additionalProperties: false,
  oneOf: [{ required: ['url'] }, { required: ['url_secret'] }],
  properties: {
    url: {
      type: 'string',
      pattern: '^https?://',
      description: 'The incoming webhook URL; its host must be in the step\'s hosts grant.',
    },
    url_secret: {
      type: 'string',
      minLength: 1,
      description: 'Name of the secret holding the webhook URL (chat webhook URLs carry a token); grant it.',
    },
    format: {
      enum: FORMATS,
      default: 'slack',
      description: 'slack (Block Kit), teams (an Adaptive Card), mattermost (Slack-style attachments) or json.',
    },
    token_secret: {
      type: 'string',
      minLength: 1,
      description: 'Name of a secret sent as `Authorization: Bearer <secret>`; grant it.',
    },
    channel: {
      type: 'string',
      minLength: 1,
      description: 'Channel to post in, for webhooks that may override theirs (Mattermost, legacy Slack).',
    },
    username: {
      type: 'string',
      minLength: 1,
      description: 'Name to post as, for webhooks that may override theirs (Mattermost, legacy Slack).',
    },
    mention: {
      type: 'string',
      minLength: 1,
      description: 'Written before the text of high and critical messages, e.g. <!here> (Slack) or @channel.',
    },
    public_url: {
      type: 'string',
      pattern: '^https?://',
      description: 'tend\'s public URL: the message links to <public_url>/v1/runs/<run id> when the input has no run_url.',
    },
    path: {
      type: 'string',
      description: 'Dotted path to the escalation or findings inside the input; by default the whole input.',
    },
    timeout_ms: {
      type: 'integer',
      minimum: 1,
      maximum: 60000,
      default: DEFAULT_TIMEOUT_MS,
      description: 'How long the post may take, in milliseconds.',
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
const retryable = (message) => new StepError('retryable', message);

const quote = (value) => {
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
};

function parseConfig(text) {
  let raw;
  try {
    raw = text.trim() === '' ? {} : JSON.parse(text);
  } catch (e) {
    throw invalidConfig(`config is not JSON: ${e.message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalidConfig(`config: expected an object, got ${quote(raw)}`);
  }
  const known = Object.keys(CONFIG_SCHEMA.properties);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) throw invalidConfig(`field \`${key}\`: unknown field; expected one of ${known.join(', ')}`);
  }
  const string = (field, pattern, expected) => {
    const v = raw[field];
    if (v === undefined) return null;
    if (typeof v !== 'string' || v === '' || (pattern && !pattern.test(v))) {
      throw invalidConfig(`field \`${field}\`: expected ${expected}, got ${quote(v)}`);
    }
    return v;
  };
  const config = {
    url: string('url', /^https?:\/\/[^/]/, 'an http or https URL'),
    urlSecret: string('url_secret', null, 'a secret name'),
    format: string('format', null, 'a string') ?? 'slack',
    tokenSecret: string('token_secret', null, 'a secret name'),
    channel: string('channel', null, 'a channel name'),
    username: string('username', null, 'a user name'),
    mention: string('mention', null, 'a non-empty string'),
    publicUrl: string('public_url', /^https?:\/\/[^/]/, 'an http or https URL'),
    path: string('path', null, 'a dotted path'),
    timeoutMs: raw.timeout_ms === undefined ? DEFAULT_TIMEOUT_MS : raw.timeout_ms,
  };
  if (!FORMATS.includes(config.format)) {
    throw invalidConfig(`field \`format\`: expected one of ${FORMATS.join(', ')}, got ${quote(config.format)}`);
  }
  if (!Number.isInteger(config.timeoutMs) || config.timeoutMs < 1 || config.timeoutMs > 60000) {
    throw invalidConfig(`field \`timeout_ms\`: expected an integer from 1 to 60000, got ${quote(raw.timeout_ms)}`);
  }
  if ((config.url === null) === (config.urlSecret === null)) {
    throw invalidConfig('give exactly one of `url` and `url_secret`');
  }
  return config;
}

// --- What to announce --------------------------------------------------------

const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : typeof v);

function pick(input, path) {
  let value = input;
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
  return value;
}

function severityOf(value, where) {
  if (!SEVERITIES.includes(value)) {
    throw failed(`${where}: expected a severity (${SEVERITIES.join(', ')}), got ${quote(value)}`);
  }
  return value;
}

function optionalText(object, field, where) {
  const v = object[field];
  if (v === undefined || v === null) return null;
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') throw failed(`${where}.${field}: expected a string, got ${quote(v)}`);
  return v;
}

// The message as a format-neutral record:
// {status, severity, title, detail, runbook, runId, runUrl, stepId, resource, dedupKey, findings: [...]}.
function messageOf(value, ctx, config, where) {
  if (Array.isArray(value)) return findingsMessage(value, ctx, config, where);
  if (kind(value) !== 'an object') {
    throw failed(`${where}: expected an escalation object or a list of findings, got ${quote(value)}`);
  }
  const text = (field) => optionalText(value, field, where);
  const title = text('title') ?? text('message') ?? text('text');
  if (title === null || title.trim() === '') throw failed(`${where}: an escalation needs a \`title\` (or \`message\`)`);
  const status = text('status') ?? 'triggered';
  if (!STATUSES.includes(status)) {
    throw failed(`${where}.status: expected one of ${STATUSES.join(', ')}, got ${quote(status)}`);
  }
  const runId = text('run_id') ?? ctx.runId;
  return {
    status,
    severity: severityOf(value.severity, `${where}.severity`),
    title,
    detail: text('detail'),
    runbook: text('runbook') ?? ctx.runbook,
    runId,
    runUrl: text('run_url') ?? runUrlOf(config, runId),
    stepId: text('step_id'),
    resource: text('resource'),
    dedupKey: text('dedup_key'),
    findings: [],
    count: 0,
  };
}

function findingsMessage(list, ctx, config, where) {
  const findings = list.map((f, i) => {
    const at = `${where}[${i}]`;
    if (kind(f) !== 'an object') throw failed(`${at}: expected a finding, got ${quote(f)}`);
    const title = optionalText(f, 'title', at);
    if (title === null) throw failed(`${at}: a finding needs a \`title\``);
    return {
      severity: severityOf(f.severity, `${at}.severity`),
      title,
      detail: optionalText(f, 'detail', at),
      resource: optionalText(f, 'resource', at),
    };
  });
  if (findings.length === 0) return null;
  const rank = (s) => SEVERITIES.indexOf(s);
  const severity = findings.reduce((top, f) => (rank(f.severity) > rank(top) ? f.severity : top), 'info');
  // Most severe first; the order of the input within a severity.
  const sorted = findings.map((f, i) => [f, i]).sort((a, b) => rank(b[0].severity) - rank(a[0].severity) || a[1] - b[1]);
  return {
    status: 'triggered',
    severity,
    title: findings.length === 1 ? findings[0].title : `${findings.length} findings in ${ctx.runbook}`,
    detail: findings.length === 1 ? findings[0].detail : null,
    runbook: ctx.runbook,
    runId: ctx.runId,
    runUrl: runUrlOf(config, ctx.runId),
    stepId: null,
    resource: findings.length === 1 ? findings[0].resource : null,
    dedupKey: null,
    findings: findings.length === 1 ? [] : sorted.map(([f]) => f),
    count: findings.length,
  };
}

const runUrlOf = (config, runId) =>
  config.publicUrl === null ? null : `${config.publicUrl.replace(/\/+$/, '')}/v1/runs/${encodeURIComponent(runId)}`;

// --- Formats -------------------------------------------------------------------

/// `[CRITICAL] title`, or `[RESOLVED] title`.
function heading(m) {
  const label = m.status === 'triggered' ? m.severity : m.status;
  return `[${label.toUpperCase()}] ${m.title}`;
}

/// The one-line text: chat notifications and clients without blocks show it.
function line(m, config) {
  const mention = config.mention && m.status === 'triggered' && ['high', 'critical'].includes(m.severity);
  return `${mention ? `${config.mention} ` : ''}${heading(m)} (runbook ${m.runbook}, run ${m.runId})`;
}

const findingLine = (f) => `[${f.severity.toUpperCase()}] ${f.title}${f.resource ? ` (${f.resource})` : ''}`;

/// The findings as lines, at most MAX_FINDINGS_LISTED, then how many more.
function findingLines(m) {
  const shown = m.findings.slice(0, MAX_FINDINGS_LISTED).map(findingLine);
  if (m.findings.length > shown.length) shown.push(`... and ${m.findings.length - shown.length} more`);
  return shown;
}

const truncate = (text, max) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
const slackEscape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/// Name/value pairs shown as fields or facts.
function facts(m) {
  const out = [['Severity', m.severity], ['Runbook', m.runbook]];
  if (m.stepId) out.push(['Step', m.stepId]);
  if (m.resource) out.push(['Resource', m.resource]);
  out.push(['Run', m.runId]);
  return out;
}

function slack(m, config) {
  const fields = facts(m).map(([name, value]) => {
    const shown = name === 'Run' && m.runUrl ? `<${slackEscape(m.runUrl)}|${slackEscape(value)}>` : slackEscape(value);
    return { type: 'mrkdwn', text: truncate(`*${name}*\n${shown}`, SLACK_FIELD_MAX) };
  });
  const body = [m.detail, ...findingLines(m).map((l) => `• ${l}`)].filter((t) => t).map(slackEscape).join('\n');
  const section = { type: 'section', fields };
  if (body) section.text = { type: 'mrkdwn', text: truncate(body, SLACK_SECTION_MAX) };
  const blocks = [{ type: 'header', text: { type: 'plain_text', text: truncate(heading(m), SLACK_HEADER_MAX) } }, section];
  if (m.runUrl) {
    blocks.push({ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open run' }, url: m.runUrl }] });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: slackEscape(context(m)) }] });
  return withTarget({ text: line(m, config), blocks }, config);
}

function teams(m, config) {
  const color = m.status === 'resolved' ? 'Good' : TEAMS_COLORS[m.severity];
  const body = [{ type: 'TextBlock', text: heading(m), weight: 'Bolder', size: 'Medium', color, wrap: true }];
  if (config.mention && line(m, config).startsWith(config.mention)) {
    body.unshift({ type: 'TextBlock', text: config.mention, wrap: true });
  }
  if (m.detail) body.push({ type: 'TextBlock', text: m.detail, wrap: true });
  for (const l of findingLines(m)) body.push({ type: 'TextBlock', text: `- ${l}`, wrap: true, spacing: 'None' });
  body.push({ type: 'FactSet', facts: facts(m).map(([title, value]) => ({ title, value })) });
  body.push({ type: 'TextBlock', text: context(m), isSubtle: true, size: 'Small', wrap: true });
  const card = {
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    type: 'AdaptiveCard',
    version: '1.4',
    body,
  };
  if (m.runUrl) card.actions = [{ type: 'Action.OpenUrl', title: 'Open run', url: m.runUrl }];
  return {
    type: 'message',
    attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: card }],
  };
}

function mattermost(m, config) {
  const attachment = {
    fallback: line(m, config),
    color: m.status === 'resolved' ? '#2eb886' : COLORS[m.severity],
    title: heading(m),
    text: [m.detail, ...findingLines(m).map((l) => `- ${l}`)].filter((t) => t).join('\n'),
    fields: facts(m).map(([title, value]) => ({ short: true, title, value })),
    footer: context(m),
  };
  if (m.runUrl) attachment.title_link = m.runUrl;
  return withTarget({ text: line(m, config), attachments: [attachment] }, config);
}

function json(m, config) {
  return {
    text: line(m, config),
    status: m.status,
    severity: m.severity,
    title: m.title,
    detail: m.detail,
    runbook: m.runbook,
    run_id: m.runId,
    run_url: m.runUrl,
    step_id: m.stepId,
    resource: m.resource,
    dedup_key: m.dedupKey,
    findings: m.findings,
  };
}

const context = (m) => `tend · ${m.runbook} · run ${m.runId}${m.status === 'triggered' ? '' : ` · ${m.status}`}`;

function withTarget(body, config) {
  if (config.channel) body.channel = config.channel;
  if (config.username) body.username = config.username;
  return body;
}

const FORMATTERS = { slack, teams, mattermost, json };

// --- Posting -------------------------------------------------------------------

function secretValue(name, field) {
  const value = secret(name);
  if (value === undefined || value === null || value === '') {
    throw invalidConfig(
      `field \`${field}\`: secret ${quote(name)} is not available to this step: grant it (\`secrets: [${name}]\` in ` +
        `the step's grants, or \`--secret ${name}\` with \`tend plugins call\`) and set it`,
    );
  }
  return value;
}

/// `host:port` of a URL, never its path or query (chat webhook URLs carry tokens there).
function hostOf(url) {
  const m = /^https?:\/\/(?:[^@/?#]*@)?([^/?#]+)/i.exec(url);
  return m ? m[1] : '?';
}

/// The text of an error an import threw: componentize-js throws the `err`
/// of a `result` as an Error carrying it in `payload`.
const importError = (e) => (e && e.payload !== undefined ? String(e.payload) : String(e?.message ?? e));

function post(url, body, config, headers) {
  const where = config.urlSecret === null ? `webhook ${hostOf(url)}` : `webhook ${hostOf(url)} (from secret ${quote(config.urlSecret)})`;
  let response;
  try {
    response = httpFetch({
      method: 'POST',
      url,
      headers,
      body: new TextEncoder().encode(JSON.stringify(body)),
      timeoutMs: config.timeoutMs,
      followRedirects: false,
    });
  } catch (e) {
    // The host's message may quote the whole URL: keep its path (the token) out.
    const message = importError(e).split(url).join(`${url.slice(0, url.indexOf('//') + 2)}${hostOf(url)}/...`);
    if (message.startsWith('hosts: ')) throw failed(`${where}: ${message}`);
    if (message.startsWith('URL ')) throw invalidConfig(`field \`${config.urlSecret === null ? 'url' : 'url_secret'}\`: ${message}`);
    throw retryable(`${where}: no answer: ${message}`);
  }
  const status = response.status;
  if (status >= 200 && status < 300) return status;
  const text = truncate(new TextDecoder().decode(response.body).trim(), ANSWER_QUOTE_MAX);
  const answer = text ? `: ${quote(text)}` : '';
  if (status === 429 || status >= 500) {
    const after = response.headers.find(([name]) => name.toLowerCase() === 'retry-after');
    const wait = after ? ` (Retry-After: ${after[1]})` : '';
    throw retryable(`${where} answered ${status}${wait}${answer}; worth retrying`);
  }
  throw failed(`${where} answered ${status}${answer}`);
}

export const step = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description:
        'Posts an escalation (severity, title, detail, run link) or a list of findings to a chat tool\'s ' +
        'incoming webhook, formatted for Slack (Block Kit), Microsoft Teams (an Adaptive Card), Mattermost ' +
        'or as plain JSON, through the host\'s HTTP capability; 429 and 5xx answers are retryable. ' +
        'Written in JavaScript.',
      configSchema: SCHEMA_TEXT,
      capabilities: ['http'],
    };
  },

  run(ctx, configText, inputText) {
    const config = parseConfig(configText);
    let input;
    try {
      input = inputText.trim() === '' ? null : JSON.parse(inputText);
    } catch (e) {
      throw failed(`input is not JSON: ${e.message}`);
    }
    const where = config.path ? `input.${config.path}` : 'input';
    const message = messageOf(pick(input, config.path), ctx, config, where);
    if (message === null) {
      log('info', `${ctx.stepId}: no findings, nothing posted`);
      return { data: JSON.stringify({ posted: false, format: config.format, findings: 0 }), metrics: [], findings: [] };
    }
    const url = config.url ?? secretValue(config.urlSecret, 'url_secret');
    if (!/^https?:\/\/[^/]/i.test(url)) {
      throw invalidConfig(`field \`url_secret\`: secret ${quote(config.urlSecret)} does not hold an http or https URL`);
    }
    const headers = [['content-type', 'application/json'], ['user-agent', `tend-${NAME}/${VERSION}`]];
    if (config.tokenSecret !== null) {
      headers.push(['authorization', `Bearer ${secretValue(config.tokenSecret, 'token_secret')}`]);
    }
    const body = FORMATTERS[config.format](message, config);
    const start = Date.now();
    const status = post(url, body, config, headers);
    const elapsed = Date.now() - start;
    log('info', `${ctx.stepId}: posted a ${message.severity} ${config.format} message to ${hostOf(url)}: ${status}`);
    const data = {
      posted: true,
      format: config.format,
      host: hostOf(url),
      status,
      severity: message.severity,
      text: line(message, config),
      findings: message.count,
    };
    return {
      data: JSON.stringify(data),
      metrics: [{ name: 'chat_post_ms', value: elapsed, labels: [['format', config.format]] }],
      findings: [],
    };
  },
};
