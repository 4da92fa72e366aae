#!/usr/bin/env python3
"""Writes the benchmark corpus: NDJSON Signal events, deterministic (seeded).

    python3 bench/make_corpus.py [--events N] [--out bench/corpus/order-completed.ndjson]

Every event is a ~1.5 KB "Order Completed" with three products, traits (email, national-format
phone), page context, locale, time zone and timestamp: the shape the engine is measured on. Users
repeat (a pool of 500), as on a real site, so a user's phone is seen many times.
"""
import argparse
import json
import os
import random

PRODUCTS = [
    ("P-1001", "RJ-BLUE-M", "Waterproof rain jacket", "Outerwear", "Northfield", 89.99),
    ("P-1002", "TS-WHT-L", "Organic cotton t-shirt", "Tops", "Loom & Co", 19.5),
    ("P-1003", "BT-BRN-42", "Leather walking boots", "Footwear", "Fellwalker", 129.0),
    ("P-1004", "SC-GRY", "Merino wool scarf", "Accessories", "Northfield", 34.0),
    ("P-1005", "BP-BLK-30", "Daypack 30 litres", "Bags", "Trailhead", 64.95),
]


def event(rng, index):
    user = rng.randrange(500)
    chosen = rng.sample(PRODUCTS, 3)
    products = [
        {
            "product_id": pid,
            "sku": sku,
            "name": name,
            "category": category,
            "brand": brand,
            "variant": rng.choice(["standard", "limited", "recycled"]),
            "price": price,
            "quantity": rng.randint(1, 3),
            "position": position + 1,
            "url": f"https://shop.example/p/{pid.lower()}",
            "image_url": f"https://cdn.shop.example/img/{sku.lower()}.jpg",
        }
        for position, (pid, sku, name, category, brand, price) in enumerate(chosen)
    ]
    revenue = round(sum(p["price"] * p["quantity"] for p in products), 2)
    second = index % 60
    return {
        "type": "track",
        "event": "Order Completed",
        "message_id": f"msg-{index:08d}-{rng.getrandbits(32):08x}",
        "user_id": f"u_{user:05d}",
        "anonymous_id": f"anon-{user:05d}-{rng.getrandbits(16):04x}",
        "timestamp": f"2026-11-27T10:{(index // 60) % 60:02d}:{second:02d}.{rng.randrange(1000):03d}Z",
        "traits": {
            "email": f"customer{user}@example.com",
            "phone": f"07700 9{user:05d}",
            "first_name": "Jane",
            "last_name": "Doe",
        },
        "context": {
            "page": {
                "url": "https://shop.example/checkout/complete",
                "path": "/checkout/complete",
                "title": "Thank you for your order",
                "referrer": "https://shop.example/checkout",
            },
            "locale": "en-GB",
            "timezone": "Europe/London",
            "ip": f"203.0.113.{user % 250}",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        },
        "properties": {
            "order_id": f"ORD-{100000 + index}",
            "revenue": revenue,
            "shipping": 4.99,
            "tax": round(revenue * 0.2, 2),
            "discount": 5.0,
            "coupon": "WELCOME10",
            "currency": "GBP",
            "products": products,
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "corpus", "order-completed.ndjson"))
    args = parser.parse_args()
    rng = random.Random(8842)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    total = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for index in range(args.events):
            line = json.dumps(event(rng, index), separators=(",", ":"))
            total += len(line)
            out.write(line + "\n")
    print(f"wrote {args.events} events, {total / args.events:.0f} bytes each on average, to {args.out}")


if __name__ == "__main__":
    main()
