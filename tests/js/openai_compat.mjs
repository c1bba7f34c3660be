// Compatibility of `hearth serve` with the official `openai` npm client:
//   node openai_compat.mjs http://127.0.0.1:PORT API_KEY     (API_KEY may also come from $HEARTH_API_KEY)
// The server must require that API key (the test checks that a wrong one is refused). Covers models.list, chat
// completions (plain, streamed, and the client's stream helper), text completions (plain and streamed),
// embeddings (the client's default base64 transport, float, explicit base64) and the error classes the client
// maps statuses to. Exit status 0 when every check passes; otherwise the first failure is printed, status 1.
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError } from 'openai';

const base = process.argv[2];
const apiKey = process.argv[3] || process.env.HEARTH_API_KEY;
if (!base || !/^https?:\/\//.test(base) || !apiKey) {
  console.error('usage: node openai_compat.mjs http://HOST:PORT API_KEY');
  process.exit(2);
}

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}
const results = [];
async function step(name, fn) {
  const t0 = performance.now();
  const detail = await fn();
  const ms = performance.now() - t0;
  results.push({ name, ms });
  console.log(`ok   ${name} (${ms.toFixed(0)} ms)${detail ? `: ${detail}` : ''}`);
}

// Retries would hide a failing status behind three attempts; the test wants the first answer.
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });

function checkUsage(usage, maxCompletion, what) {
  check(usage && Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `${what}: usage.prompt_tokens ${usage?.prompt_tokens}`);
  check(Number.isInteger(usage.completion_tokens) && usage.completion_tokens > 0 && usage.completion_tokens <= maxCompletion,
    `${what}: usage.completion_tokens ${usage.completion_tokens} not in 1..${maxCompletion}`);
  check(usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
    `${what}: usage.total_tokens ${usage.total_tokens} != prompt + completion`);
}

async function expectError(promise, cls, status, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof cls, `${what}: the client threw ${e?.constructor?.name} (${e?.message}), expected ${cls.name}`);
    check(e.status === status, `${what}: status ${e.status}, expected ${status}`);
    return e;
  }
  throw new Failure(`${what}: the request succeeded, expected ${cls.name}`);
}

const started = performance.now();
try {
  let model = '';
  await step('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      check(m.object === 'model', `models.list: object "${m.object}"`);
      check(typeof m.owned_by === 'string', 'models.list: owned_by is not a string');
      ids.push(m.id);
    }
    check(ids.length >= 1 && typeof ids[0] === 'string' && ids[0].length > 0, `models.list returned ${JSON.stringify(ids)}`);
    model = ids[0];
    return `model "${model}"`;
  });

  const chatRequest = {
    model,
    messages: [{ role: 'system', content: 'You tell short stories.' }, { role: 'user', content: 'A story about Lily.' }],
    max_tokens: 24,
    temperature: 0,
    seed: 3,
  };
  let chat;
  await step('chat.completions.create', async () => {
    chat = await client.chat.completions.create(chatRequest);
    check(chat.object === 'chat.completion', `object "${chat.object}"`);
    check(chat.model === model, `model "${chat.model}"`);
    check(Array.isArray(chat.choices) && chat.choices.length === 1, 'expected one choice');
    const c = chat.choices[0];
    check(c.index === 0, `choices[0].index ${c.index}`);
    check(c.message.role === 'assistant', `role "${c.message.role}"`);
    check(typeof c.message.content === 'string' && c.message.content.length > 0, 'choices[0].message.content is empty');
    check(['stop', 'length'].includes(c.finish_reason), `finish_reason "${c.finish_reason}"`);
    checkUsage(chat.usage, 24, 'chat');
    return `${chat.usage.completion_tokens} tokens, finish_reason ${c.finish_reason}`;
  });

  await step('chat.completions.create stream', async () => {
    const stream = await client.chat.completions.create({ ...chatRequest, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let lastChoice = null;
    let usage = null;
    for await (const chunk of stream) {
      chunks++;
      check(chunk.object === 'chat.completion.chunk', `chunk object "${chunk.object}"`);
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length === 0) continue;  // the include_usage chunk
      const c = chunk.choices[0];
      if (typeof c.delta.content === 'string') text += c.delta.content;
      lastChoice = c;
    }
    check(chunks >= 3, `only ${chunks} chunks`);
    check(text === chat.choices[0].message.content,
      `streamed text ${JSON.stringify(text)} != non-streamed ${JSON.stringify(chat.choices[0].message.content)}`);
    check(lastChoice && lastChoice.finish_reason === chat.choices[0].finish_reason,
      `the last chunk's finish_reason is ${lastChoice?.finish_reason}, expected ${chat.choices[0].finish_reason}`);
    check(usage && usage.completion_tokens === chat.usage.completion_tokens && usage.prompt_tokens === chat.usage.prompt_tokens,
      `streamed usage ${JSON.stringify(usage)} != ${JSON.stringify(chat.usage)}`);
    return `${chunks} chunks, text equals the non-streamed answer`;
  });

  await step('chat.completions.stream helper', async () => {
    // The helper accumulates the chunks itself and validates their shape more strictly than a plain loop.
    const runner = client.chat.completions.stream(chatRequest);
    let deltas = 0;
    runner.on('content', () => deltas++);
    const final = await runner.finalChatCompletion();
    check(final.choices[0].message.content === chat.choices[0].message.content,
      `the helper assembled ${JSON.stringify(final.choices[0].message.content)}`);
    check(final.choices[0].finish_reason === chat.choices[0].finish_reason, 'the helper saw a different finish_reason');
    check(deltas >= 2, `only ${deltas} content events`);
    return `${deltas} content events`;
  });

  const completionRequest = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  let completion;
  await step('completions.create', async () => {
    completion = await client.completions.create(completionRequest);
    check(completion.object === 'text_completion', `object "${completion.object}"`);
    const c = completion.choices[0];
    check(typeof c.text === 'string' && c.text.length > 0, 'choices[0].text is empty');
    check(['stop', 'length'].includes(c.finish_reason), `finish_reason "${c.finish_reason}"`);
    checkUsage(completion.usage, 16, 'completion');
    return `${JSON.stringify(c.text)}`;
  });

  await step('completions.create stream', async () => {
    const stream = await client.completions.create({ ...completionRequest, stream: true });
    let text = '';
    let finish = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    check(text === completion.choices[0].text, `streamed ${JSON.stringify(text)} != ${JSON.stringify(completion.choices[0].text)}`);
    check(finish === completion.choices[0].finish_reason, `streamed finish_reason ${finish}`);
    return `${chunks} chunks`;
  });

  await step('embeddings.create', async () => {
    const input = ['Once upon a time', 'Lily liked her dog.'];
    // No encoding_format: the client asks for base64 and decodes it to numbers itself.
    const viaBase64 = await client.embeddings.create({ model, input });
    check(viaBase64.object === 'list' && viaBase64.data.length === 2, 'expected a list of 2 embeddings');
    const dim = viaBase64.data[0].embedding.length;
    check(dim > 0, 'empty embedding');
    for (const [i, d] of viaBase64.data.entries()) {
      check(d.index === i && d.object === 'embedding', `data[${i}]: index ${d.index}, object ${d.object}`);
      check(Array.isArray(d.embedding) && d.embedding.length === dim, `data[${i}] has ${d.embedding.length} dimensions, expected ${dim}`);
      check(d.embedding.every(Number.isFinite), `data[${i}] has non-finite values`);
      const norm = Math.hypot(...d.embedding);
      check(Math.abs(norm - 1) < 1e-4, `data[${i}] has L2 norm ${norm}, expected 1 (the server normalises)`);
    }
    check(viaBase64.data[0].embedding.some((x, k) => x !== viaBase64.data[1].embedding[k]), 'different inputs gave equal vectors');
    check(viaBase64.usage.prompt_tokens > 0 && viaBase64.usage.total_tokens === viaBase64.usage.prompt_tokens,
      `usage ${JSON.stringify(viaBase64.usage)}`);

    const asFloat = await client.embeddings.create({ model, input, encoding_format: 'float' });
    for (let i = 0; i < 2; i++)
      check(asFloat.data[i].embedding.every((x, k) => Math.fround(x) === viaBase64.data[i].embedding[k]),
        `data[${i}]: the float answer differs from the base64 one`);

    const raw = await client.embeddings.create({ model, input, encoding_format: 'base64', dimensions: dim });
    check(typeof raw.data[0].embedding === 'string', 'encoding_format base64 did not return a string');
    const bytes = Buffer.from(raw.data[0].embedding, 'base64');
    check(bytes.length === dim * 4, `the base64 embedding has ${bytes.length} bytes, expected ${dim * 4}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0; k < dim; k++)
      check(view.getFloat32(k * 4, true) === viaBase64.data[0].embedding[k], `base64 value ${k} differs`);
    return `2 × ${dim} dimensions, unit norm; float = base64`;
  });

  await step('errors', async () => {
    const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: `${apiKey}-wrong`, maxRetries: 0 });
    const auth = await expectError(wrong.chat.completions.create(chatRequest), AuthenticationError, 401, 'wrong API key');
    check(auth.code === 'invalid_api_key', `wrong API key: error code ${auth.code}`);
    await expectError(wrong.models.list(), AuthenticationError, 401, 'models.list with a wrong API key');
    const bad = await expectError(client.chat.completions.create({ ...chatRequest, n: 2 }), BadRequestError, 400, 'n: 2');
    check(bad.param === 'n', `n: 2: error param ${bad.param}, expected "n"`);
    await expectError(client.chat.completions.create({ ...chatRequest, model: 'no-such-model' }), NotFoundError, 404,
      'an unknown model');
    return `401 ${auth.constructor.name}, 400 ${bad.constructor.name} (param n), 404 NotFoundError`;
  });

  console.log(`openai_compat: ${results.length} checks passed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  process.exit(0);
} catch (e) {
  console.log(`FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
  console.log(`openai_compat: failed after ${results.length} checks passed`);
  process.exit(1);
}
