/**
 * Where tenants may point webhooks. In production: https only, and never a private, loopback or link-local
 * address (the gateway must not be turned into a probe of networks behind it). Development allows http and
 * loopback so a local receiver works.
 */
export function checkEndpointUrl(raw: string, production: boolean): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "not a valid URL";
  }
  if (u.username || u.password) return "credentials in the URL are not allowed";
  if (u.protocol !== "https:" && !(u.protocol === "http:" && !production)) return production ? "webhook URLs must use https" : "webhook URLs must use http or https";
  if (production && isPrivateHost(u.hostname)) return "webhook URLs may not point at private, loopback or link-local addresses";
  return null;
}

export function isPrivateHost(hostname: string): boolean {
  // Brackets of IPv6 literals and the root label's dot (`localhost.` is localhost) do not change the host.
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (h === "localhost" || h.endsWith(".localhost") || h.endsWith(".local") || h.endsWith(".internal")) return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
  }
  if (h.includes(":")) {
    // `::/96` holds the unspecified, loopback, IPv4-mapped and IPv4-compatible forms (the URL parser writes
    // `[::127.0.0.1]` as `::7f00:1`); then unique-local, link- and site-local, multicast, and NAT64 (which embeds
    // an IPv4 address).
    return h.startsWith("::") || /^(f[cd]|fe[89a-f]|ff)/.test(h) || h.startsWith("64:ff9b:");
  }
  return false;
}
