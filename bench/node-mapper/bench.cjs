// The same JSON-in, JSON-out work as `signal map` with the Retail preset, done by Segment's
// mapping-kit: JSON.parse each NDJSON line, apply the mapping, JSON.stringify the request body.
// Mapping-kit has no E.164 normalisation or pass-through, so it does less than Signal does here.
//
//   node bench/node-mapper/bench.cjs [corpus.ndjson] [rounds]
const fs = require('fs');
const path = require('path');
const { transform } = require('@segment/actions-core');

const corpus = process.argv[2] || path.join(__dirname, '..', 'corpus', 'order-completed.ndjson');
const rounds = Number(process.argv[3] || 7);
const lines = fs.readFileSync(corpus, 'utf8').split('\n').filter(Boolean);

const p = (jsonPath) => ({ '@path': jsonPath });
const mapping = {
  type: 'event',
  customer_id: p('$.user_id'),
  user_identifiers: { u_em: p('$.traits.email'), u_mb: p('$.traits.phone') },
  attributes: { u_fn: p('$.traits.first_name'), u_ln: p('$.traits.last_name') },
  actions: [
    {
      action: p('$.event'),
      platform: 'web',
      current_time: p('$.timestamp'),
      attributes: {
        order_id: p('$.properties.order_id'),
        value: p('$.properties.revenue'),
        shipping: p('$.properties.shipping'),
        tax: p('$.properties.tax'),
        discount: p('$.properties.discount'),
        coupon: p('$.properties.coupon'),
        currency: p('$.properties.currency'),
        products: p('$.properties.products'),
      },
    },
  ],
};

function run() {
  let bytes = 0;
  const start = process.hrtime.bigint();
  for (const line of lines) {
    const body = JSON.stringify(transform(mapping, JSON.parse(line)));
    bytes += body.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: lines.length / seconds, bytes };
}

run(); // warm the JIT
const rates = [];
for (let i = 0; i < rounds; i++) rates.push(run().rate);
rates.sort((a, b) => a - b);
const median = rates[Math.floor(rates.length / 2)];
console.log(`node mapping-kit: median ${Math.round(median)} events/s, best ${Math.round(rates[rates.length - 1])} events/s over ${rounds} rounds of ${lines.length} events`);
