const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes standard padded base64 strictly, or returns undefined: Buffer.from(text, 'base64')
 * skips bad characters and missing padding, which would let two texts name the same bytes.
 */
export function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // Re-encoding catches non-zero padding bits ("YR==" vs "YQ==").
  return bytes.toString('base64') === text ? bytes : undefined;
}
