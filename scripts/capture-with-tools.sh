#!/usr/bin/env bash
# Capture the seed lab with the tools users have: tcpdump on "any" (Linux cooked v2, pcap) and
# tshark on "lo" (pcapng), to check osflow-sniff reads what they write. Needs root, tcpdump, tshark.
set -euo pipefail
cd "$(dirname "$0")"
filter='tcp port 80 or tcp port 60999'
tcpdump -i any -s 0 -w ../pcaps/image-show-any.pcap "$filter" 2>/dev/null & dump=$!
tshark -i lo -w ../pcaps/image-show-lo.pcapng -f "$filter" 2>/dev/null & shark=$!
sleep 3  # both capture processes need a moment before they see packets
python3 lab.py scenarios/image-show.json /tmp/osflow-lab.pcap
sleep 1
kill -INT "$dump" "$shark"
wait "$dump" "$shark" || true
rm -f /tmp/osflow-lab.pcap /tmp/osflow-lab.truth.json
