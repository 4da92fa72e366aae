// Compiled (not run) by tests/tag.rs: the tag's declarations describe the calls of docs/guides/sites-and-apps.md.
import type { SignalTag } from '../../tag/signal';

declare const datafly: SignalTag;

async function documentExample(): Promise<string | undefined> {
  await datafly.identify('u_8842', { email: 'jane@example.com', phone: '+447700900123' });
  const queued = await datafly.track('Order Completed', { order_id: 'ORD-1001', revenue: 89.99, currency: 'GBP', coupon: 'WELCOME10' });
  await datafly.page('Home');
  await datafly.page({ section: 'shoes' });
  await datafly.alias(8842, 'anon-1');
  await datafly.consent(false);
  await datafly.reset();
  const flushed = await datafly.flush();
  const sent: number = flushed?.sent ?? 0;
  console.log(sent, window.signal?.VERSION);
  return queued?.message_id;
}
void documentExample;
