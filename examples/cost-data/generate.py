#!/usr/bin/env python3
"""Writes the cost-audit sample data (deterministic): billing/focus.csv (FOCUS 1.1,
USD), billing/cur.csv (AWS CUR legacy, EUR) and usage/utilization.csv, September 2024.
Run from examples/cost-data: python3 generate.py"""
import csv, json

DAYS = [f"2024-09-{d:02d}" for d in range(1, 31)]

def focus():
    head = ["BillingAccountId", "SubAccountId", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
            "ServiceName", "ResourceId", "PricingCategory", "CommitmentDiscountId", "BilledCost",
            "EffectiveCost", "ListCost", "BillingCurrency", "Tags"]
    rows = []
    def add(day, acct, cat, service, res, pricing, commit, cost, tags):
        rows.append(["900000000000", acct, f"{day}T00:00:00Z", f"{day}T23:59:59Z", cat, service, res, pricing,
                     commit, f"{cost:.2f}", f"{cost:.2f}", f"{cost * 1.1:.2f}" if cost > 0 else f"{cost:.2f}", "USD",
                     json.dumps(tags) if tags is not None else "NULL"])
    for i, day in enumerate(DAYS):
        d = i + 1
        add(day, "111111111111", "Usage", "Amazon EC2", "i-web-1", "Standard", "NULL", 9.60, {"team": "web", "env": "prod"})
        add(day, "111111111111", "Usage", "Amazon EC2", "i-api-2", "Standard", "NULL", 7.20, {"team": "api", "env": "prod"})
        add(day, "111111111111", "Usage", "Amazon EC2", "i-old-3", "Standard", "NULL", 3.00, {"team": "web", "env": "staging"})
        add(day, "111111111111", "Usage", "Amazon EC2", "i-batch-4", "Standard", "NULL", 5.0 + (d * 7) % 11, {"workload": "batch"})
        add(day, "111111111111", "Usage", "Amazon EC2", "i-ci-5", "Dynamic", "NULL", 1.50, {"workload": "ci"})
        add(day, "222222222222", "Usage", "Amazon RDS", "db-main", "Standard", "NULL", 24.0 + (1.2 if d % 2 else -1.2), {"team": "data"})
        add(day, "222222222222", "Usage", "Amazon RDS", "db-replica", "Committed",
            "arn:aws:rds:us-east-1:222222222222:ri:db-ri-1", 12.00, {"team": "data"})
        add(day, "222222222222", "Usage", "Amazon S3", "logs-bucket", "Standard", "NULL", 2.00 if d <= 23 else 4.00, {})
        add(day, "222222222222", "Usage", "AWS Data Transfer", "NULL", "Standard", "NULL", 0.85, None)
    add("2024-09-15", "111111111111", "Credit", "Amazon EC2", "NULL", "NULL", "NULL", -50.00, None)
    add("2024-09-20", "222222222222", "Adjustment", "Amazon RDS", "NULL", "NULL", "NULL", -12.34, None)
    add("2024-09-30", "111111111111", "Tax", "Amazon EC2", "NULL", "NULL", "NULL", 31.20, None)
    with open("billing/focus.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)

def cur():
    head = ["identity/LineItemId", "bill/PayerAccountId", "lineItem/UsageAccountId", "lineItem/LineItemType",
            "lineItem/UsageStartDate", "lineItem/ProductCode", "lineItem/ResourceId", "lineItem/UnblendedCost",
            "lineItem/CurrencyCode", "product/ProductName", "pricing/term", "resourceTags/user:team",
            "resourceTags/user:workload"]
    rows = []
    def add(day, kind, code, res, cost, product, term, team, workload):
        rows.append([f"li-{len(rows) + 1}", "900000000000", "333333333333", kind, f"{day}T00:00:00Z", code, res,
                     f"{cost:.4f}", "EUR", product, term, team, workload])
    for i, day in enumerate(DAYS):
        d = i + 1
        add(day, "Usage", "AmazonEC2", "i-eu-1", 5.00, "Amazon Elastic Compute Cloud", "OnDemand", "shop", "")
        add(day, "Usage", "AmazonEC2", "i-eu-2", 2.0 + (d % 5), "Amazon Elastic Compute Cloud", "OnDemand", "shop", "ci")
        add(day, "SavingsPlanCoveredUsage", "AmazonEC2", "i-eu-3", 4.00, "Amazon Elastic Compute Cloud", "", "shop", "")
        add(day, "Usage", "AmazonCloudWatch", "", 1.00 if d <= 23 else 3.00, "AmazonCloudWatch", "OnDemand", "", "")
    add("2024-09-10", "Credit", "AmazonEC2", "", -10.00, "Amazon Elastic Compute Cloud", "", "", "")
    add("2024-09-12", "Refund", "AmazonCloudWatch", "", -3.00, "AmazonCloudWatch", "", "", "")
    add("2024-09-30", "Tax", "AmazonEC2", "", 8.40, "Amazon Elastic Compute Cloud", "", "", "")
    with open("billing/cur.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)

def utilization():
    profiles = {  # resource: (cpu, memory, requests, connections) per sample, varied a little
        "i-web-1": (12.0, 25.0, 1800, 40),
        "i-api-2": (15.0, 62.0, 5200, 90),
        "i-old-3": (2.0, 18.0, 0, 0),
        "i-eu-1": (55.0, 70.0, 900, 20),
    }
    with open("usage/utilization.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["resource_id", "timestamp", "cpu_percent", "memory_percent", "requests", "connections"])
        for i, day in enumerate(DAYS):
            for h in (0, 6, 12, 18):
                for res, (cpu, mem, req, conn) in profiles.items():
                    wobble = ((i * 4 + h) % 7) - 3
                    w.writerow([res, f"{day}T{h:02d}:00:00Z", f"{max(cpu + wobble, 0):.1f}",
                                f"{max(mem + wobble, 0):.1f}", req + wobble * 10 if req else 0,
                                conn + wobble if conn else 0])

focus()
cur()
utilization()
