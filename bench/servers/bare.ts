/** The start-up reference: a bare `Bun.serve` answering 200 on every path. Env: PORT. */
Bun.serve({ port: Number(process.env.PORT), hostname: "0.0.0.0", fetch: () => new Response("ok") });
