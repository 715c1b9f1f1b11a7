// Runs one execution of a state machine definition with aws-local-stepfunctions, for the
// sandbox. Driven by `switchyard_sandbox::runner` (Rust), which computes everything below from the
// deployment model; this script only executes.
//
// stdin: one JSON object
//   definition      the ASL definition, `${...}` substitutions already applied
//   input           the execution input
//   name            the execution name ($$.Execution.Name)
//   lambda          { "<function ARN>": "<invoke URL of cargo lambda watch>" }
//   aws             { endpoint, region }: where `arn:aws:states:::sns:publish` publishes (moto)
//   waitMs          optional: every Wait state lasts this long instead
//   retryMs         optional: every Retry pause lasts this long instead
// stdout: one JSON line per history event as it happens ({"event": …}), then
//   {"execution": {"status": "SUCCEEDED"|"FAILED", "output"?, "error"?, "cause"?}}
//
// Task resources it can run: Lambda function ARNs (POST to the Lambda Invoke API of
// `cargo lambda watch`; a function error becomes a task error named by its `errorType`, with
// AWS's `{"errorType","errorMessage"}` JSON as the cause), and the SNS publish integration.
// Anything else is refused by name, never skipped.

import { StateMachine } from 'aws-local-stepfunctions';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

class TaskError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

async function invokeLambda(arn, payload) {
  const url = spec.lambda[arn];
  if (!url) throw new TaskError('Lambda.ResourceNotFoundException', `no function ${arn} in the sandbox`);
  let response;
  try {
    response = await fetch(url, { method: 'POST', body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
  } catch (e) {
    throw new TaskError('Lambda.ServiceException', `invoking ${arn}: ${e.message}`);
  }
  const text = await response.text();
  let body;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    throw new TaskError('Lambda.ServiceException', `${arn} answered ${response.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  const functionError = response.headers.get('x-amz-function-error') || (response.status >= 400 ? 'Unhandled' : null);
  if (functionError) {
    if (body && typeof body.errorType === 'string') {
      throw new TaskError(body.errorType, JSON.stringify({ errorType: body.errorType, errorMessage: body.errorMessage }));
    }
    throw new TaskError('Lambda.ServiceException', `${arn} answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return body;
}

// The Step Functions SNS integration, as moto's SNS query API (Publish).
async function publishSns(parameters) {
  const form = new URLSearchParams({ Action: 'Publish', TopicArn: parameters.TopicArn, Message: parameters.Message });
  if (parameters.Subject) form.set('Subject', parameters.Subject.slice(0, 99));
  const region = parameters.TopicArn.split(':')[3];
  const response = await fetch(spec.aws.endpoint + '/', {
    method: 'POST',
    body: form,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      // moto picks the region's backend from the credential scope.
      authorization: `AWS4-HMAC-SHA256 Credential=sandbox/20260101/${region}/sns/aws4_request, SignedHeaders=host, Signature=0`,
    },
  });
  const text = await response.text();
  if (!response.ok) {
    const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? 'InternalError';
    throw new TaskError(`SNS.${code}`, text.slice(0, 500));
  }
  return { MessageId: /<MessageId>([^<]+)<\/MessageId>/.exec(text)?.[1] ?? null };
}

const handlers = {};
for (const [name, state] of Object.entries(spec.definition.States)) {
  if (state.Type !== 'Task') continue;
  if (state.Resource.startsWith('arn:aws:lambda:')) {
    handlers[name] = (input) => invokeLambda(state.Resource, input);
  } else if (state.Resource === 'arn:aws:states:::sns:publish') {
    handlers[name] = (input) => publishSns(input);
  } else {
    handlers[name] = () => {
      throw new TaskError('States.Runtime', `the sandbox runner cannot run resource ${state.Resource}`);
    };
  }
}

// No override (absent or null) means as defined: an override of null would make every Wait
// ~0 ms and crash every Retry (aws-local-stepfunctions reads override[i] of null).
// A Wait whose length a task answers (SecondsPath: the writer lease) is a safety wait, never
// shortened: a shorter lease would let two writers commit at once.
const overrideAll = (type, ms) =>
  ms == null
    ? undefined
    : Object.fromEntries(
        Object.entries(spec.definition.States)
          .filter(([, s]) => (type === 'Wait' ? s.Type === 'Wait' && !('SecondsPath' in s) : Array.isArray(s.Retry)))
          .map(([n]) => [n, ms]),
      );

const machine = new StateMachine(spec.definition, { validationOptions: { checkArn: false } });
const startTime = new Date().toISOString();
const execution = machine.run(spec.input, {
  overrides: {
    taskResourceLocalHandlers: handlers,
    waitTimeOverrides: overrideAll('Wait', spec.waitMs),
    retryIntervalOverrides: overrideAll('Retry', spec.retryMs),
  },
  context: {
    Execution: { Id: `sandbox:${spec.name}`, Name: spec.name, Input: spec.input, StartTime: startTime },
    StateMachine: { Name: spec.stateMachine ?? 'sandbox' },
  },
});

let failed = null; // the ExecutionFailed event: its Error/Cause are the execution's
const history = (async () => {
  for await (const event of execution.eventLogs) {
    if (event.type === 'ExecutionFailed') failed = event;
    print({ event });
  }
})();

try {
  const output = await execution.result;
  await history;
  print({ execution: { status: 'SUCCEEDED', output } });
} catch (e) {
  await history.catch(() => {});
  const error = failed ? failed.Error : e.name;
  const cause = failed ? failed.Cause : (e.cause ?? e.message);
  print({ execution: { status: 'FAILED', error, cause: typeof cause === 'string' ? cause : JSON.stringify(cause) } });
}
