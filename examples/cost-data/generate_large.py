#!/usr/bin/env python3
"""Writes a large FOCUS 1.1 export for the cost-audit benchmark (not committed):
    python3 generate_large.py 1000000 /tmp/cost-bench/billing/focus.csv
ROWS lines over the 30 days of September 2024, 5,000 resources in 4 services and
20 accounts, tags as quoted JSON, a credit every 10,000th line. Deterministic."""
import sys, json

rows, path = int(sys.argv[1]), sys.argv[2]
services = ["Amazon EC2", "Amazon RDS", "Amazon S3", "AWS Lambda"]
head = ("BillingAccountId,SubAccountId,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceName,ResourceId,"
        "PricingCategory,CommitmentDiscountId,BilledCost,EffectiveCost,ListCost,BillingCurrency,Tags\n")
with open(path, "w", buffering=1 << 20) as f:
    f.write(head)
    for i in range(rows):
        day = 1 + i * 30 // rows
        r = i % 5000
        tags = json.dumps({"team": f"team-{r % 37}", "env": "prod" if r % 3 else "dev"}).replace('"', '""')
        if i % 10000 == 9999:
            cat, cost, res, pricing = "Credit", -25.0, "NULL", "NULL"
        else:
            cat, cost, res = "Usage", 0.5 + (i * 7919 % 1000) / 100, f"res-{r}"
            pricing = "Standard" if r % 4 else "Committed"
        f.write(f"900000000000,acct-{r % 20},2024-09-{day:02d}T00:00:00Z,2024-09-{day:02d}T23:59:59Z,{cat},"
                f"{services[r % 4]},{res},{pricing},NULL,{cost:.4f},{cost:.4f},{cost * 1.2:.4f},USD,\"{tags}\"\n")
