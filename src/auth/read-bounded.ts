/**
 * Reads an HTTP answer's body from the app or its identity provider without trusting its size:
 * the text, or null as soon as it passes `max` bytes (declared or read), with the rest cancelled.
 * Shared by the JWKS fetch, the AUTH_CONNECT_URL client and the AUTHZ_URL client.
 */
export async function readBounded(res: Response, max: number): Promise<string | null> {
  if (Number(res.headers.get("content-length") ?? "0") > max) {
    await res.body?.cancel();
    return null;
  }
  const reader = res.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}
