// Records one scenario of a Vercel AI SDK agent for the conformance corpus (run by the Python recorder:
// `node record.mjs SCENARIO RECEIVER_URL SETUP_JSON`). The model is the SDK's own MockLanguageModelV3
// playing the scenario's script; spans go through the OpenTelemetry JS SDK's OTLP/HTTP (JSON) exporter
// to the recorder's loopback receiver. Telemetry records inputs and outputs, so canaries are exported.
import { APICallError } from "@ai-sdk/provider";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { generateText, stepCountIs, tool } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { z } from "zod";

const [scenario, receiverUrl, setupJson] = process.argv.slice(2);
const setup = JSON.parse(setupJson);
const { canaries, script, promptTokens, completionTokens } = setup;

// The exporter's deadline per batch, retries included: the stock 10 s is shorter than the Ingest API may keep
// a batch waiting for a write slot on a busy box. A batch it still drops rejects forceFlush below, which
// fails the process.
const exporter = new OTLPTraceExporter({ url: `${receiverUrl}/v1/traces`, timeoutMillis: 60_000 });

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({
    "service.name": "vercel-ai-agent",
    "service.version": setup.version ?? "1.0.0",
    "deployment.environment.name": "conformance",
  }),
  spanProcessors: [new BatchSpanProcessor(exporter)],
});
provider.register();

const usage = {
  inputTokens: { total: promptTokens, noCache: promptTokens, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: completionTokens, text: completionTokens, reasoning: 0 },
};
let call = 0;
const model = new MockLanguageModelV3({
  provider: "mock-provider",
  modelId: "mock-model",
  doGenerate: async () => {
    const action = script[Math.min(call, script.length - 1)];
    call += 1;
    if (action === "rate_limit") {
      throw new APICallError({
        message: `${canaries.exception} rate limit reached for requests`,
        url: "http://127.0.0.1/mock",
        requestBodyValues: {},
        statusCode: 429,
        isRetryable: true,
      });
    }
    if (action === "tool") {
      return {
        content: [{ type: "tool-call", toolCallId: `call_${call}`, toolName: "lookup_order",
                    input: JSON.stringify({ order_id: canaries.tool_args }) }],
        finishReason: { unified: "tool-calls", raw: "tool_calls" },
        usage,
        warnings: [],
      };
    }
    return {
      content: [{ type: "text", text: canaries.output }],
      finishReason: { unified: "stop", raw: "stop" },
      usage,
      warnings: [],
    };
  },
});

let toolCalls = 0;
const lookupOrder = tool({
  description: "Look up the shipping state of an order.",
  inputSchema: z.object({ order_id: z.string() }),
  execute: async ({ order_id }) => {
    toolCalls += 1;
    if (scenario === "tool_fails" || (scenario === "retry" && toolCalls === 1)) {
      throw new Error(`${canaries.exception} order service refused ${order_id}`);
    }
    return `${canaries.tool_result} order ${order_id} shipped`;
  },
});

let failed = null;
try {
  await generateText({
    model,
    system: `${canaries.system} you are a support agent; use the tools.`,
    prompt: `${canaries.prompt} where is my order?`,
    tools: { lookup_order: lookupOrder },
    stopWhen: stepCountIs(6),
    maxRetries: 0,
    experimental_telemetry: { isEnabled: true, functionId: "support_bot", recordInputs: true, recordOutputs: true },
  });
} catch (error) {
  failed = error;
}
await provider.forceFlush();
await provider.shutdown();
if (failed && scenario !== "rate_limited") {
  throw failed;
}
if (failed) {
  console.error(`vercel-ai/${scenario}: the run ended with ${failed.name}`);
}
