// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * A TCP socket's two ends, as both programs report them (ends.py reads this layout).
 * Include after vmlinux.h and libbpf's headers.
 */
#ifndef OSFLOW_ENDS_H
#define OSFLOW_ENDS_H

#define AF_INET6 10

struct ends {
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 unused;
	__u8 local_addr[16]; /* IPv4: the first 4 bytes */
	__u8 remote_addr[16];
};

static __always_inline void read_ends(struct sock *sk, struct ends *ends)
{
	ends->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ends->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ends->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ends->unused = 0;
	if (ends->family == AF_INET6) {
		bpf_core_read(ends->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(ends->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		__builtin_memset(ends->local_addr, 0, 16);
		__builtin_memset(ends->remote_addr, 0, 16);
		bpf_core_read(ends->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(ends->remote_addr, 4, &sk->__sk_common.skc_daddr);
	}
}

#endif
