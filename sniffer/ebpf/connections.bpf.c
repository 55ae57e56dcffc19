// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * Who opened each TCP connection on this host: a report per connection as it is opened
 * (connect) or accepted, with its two ends and the process behind it -- pid, comm and the start
 * of its command line, read while that process runs, so that one gone a millisecond later is
 * still named. owners.py loads these programs and reads the reports from a ring buffer.
 *
 * connect: the sock:inet_sock_set_state tracepoint fires in the connecting process on
 * CLOSE -> SYN_SENT, but before the kernel has chosen the local port. The owner read there waits
 * in `connecting` until the socket leaves SYN_SENT for ESTABLISHED, when both ends are known
 * (that transition runs in softirq, where the current task is anybody's). The tracepoint is
 * attached raw: no tracefs mount is needed to find it.
 *
 * accept, one of (owners.py loads the first the kernel takes):
 * - on_accept: inet_csk_accept returning the new socket, in the accepting process (fexit; some
 *   kernels refuse tracing programs, and kprobes may not be built in);
 * - on_passive_open + on_receive/on_send: the first read or write of a socket that a listener
 *   accepted, in the process that serves it (raw tracepoints, Linux 6.3 and later).
 *
 * Built CO-RE against a vmlinux.h dumped from the running kernel's BTF (see build.py).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "ends.h"

#define COMM_SIZE 16
#define ARGV_SIZE 512 /* the command line's first bytes: enough to name a service, title a page */

struct owner {
	__u32 pid; /* the thread group: the process */
	__u32 argv_size; /* bytes of argv read (0: none could be) */
	char comm[COMM_SIZE];
	char argv[ARGV_SIZE]; /* NUL-separated words, as /proc/PID/cmdline */
};

/* One report; owners.py unpacks this layout (REPORT there). */
struct connection {
	struct ends ends;
	__u8 accepted; /* 1: the accepting end, 0: the connecting end */
	__u8 unused[3];
	struct owner owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} connections SEC(".maps");

/* sockets between connect() and the end of their handshake, by address: their owner */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct owner);
} connecting SEC(".maps");

/* sockets a listener accepted that no process has read or written yet (first-use mode) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} unclaimed SEC(".maps");

/* room for one owner: too large for the 512-byte stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct owner);
} scratch SEC(".maps");

static __always_inline void read_owner(struct owner *owner)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	__u32 size = 0;

	owner->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	if (start && end > start) /* a kernel thread has neither */
		size = end - start > ARGV_SIZE ? ARGV_SIZE : end - start;
	/* a page of argv not in memory cannot be read here (no faults): comm must do */
	if (size && bpf_probe_read_user(owner->argv, size & (2 * ARGV_SIZE - 1), (void *)start))
		size = 0;
	owner->argv_size = size;
}

/* A report of `sk`'s two ends, owned by `owner` (NULL: the current process). */
static __always_inline void report(struct sock *sk, const struct owner *owner, __u8 accepted)
{
	struct connection *report = bpf_ringbuf_reserve(&connections, sizeof(*report), 0);

	if (!report)
		return; /* the reader fell behind: /proc names this one, if it can */
	__builtin_memset(report, 0, offsetof(struct connection, owner));
	read_ends(sk, &report->ends);
	report->accepted = accepted;
	if (owner)
		bpf_probe_read_kernel(&report->owner, sizeof(report->owner), owner);
	else
		read_owner(&report->owner);
	bpf_ringbuf_submit(report, 0);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(on_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	__u32 zero = 0;
	struct owner *owner;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		owner = bpf_map_lookup_elem(&scratch, &zero);
		if (!owner)
			return 0;
		read_owner(owner);
		bpf_map_update_elem(&connecting, &key, owner, BPF_ANY);
	} else if (oldstate == TCP_SYN_SENT) {
		owner = bpf_map_lookup_elem(&connecting, &key);
		if (!owner)
			return 0; /* opened before the program was attached */
		if (newstate == TCP_ESTABLISHED)
			report(sk, owner, 0);
		bpf_map_delete_elem(&connecting, &key);
	}
	return 0;
}

SEC("fexit/inet_csk_accept")
int on_accept(__u64 *ctx)
{
	__u64 returned = 0;

	/* the return value, wherever this kernel's signature puts it (it changed in 6.10) */
	bpf_get_func_ret(ctx, &returned);
	if (returned)
		report((struct sock *)returned, NULL, 1);
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(on_passive_open, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	__u8 yes = 1;

	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED)
		bpf_map_update_elem(&unclaimed, &key, &yes, BPF_ANY);
	else if (newstate == TCP_CLOSE) /* its address may be another socket's next */
		bpf_map_delete_elem(&unclaimed, &key);
	return 0;
}

static __always_inline void claim(struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (bpf_map_lookup_elem(&unclaimed, &key) && !bpf_map_delete_elem(&unclaimed, &key))
		report(sk, NULL, 1); /* (deleted first: two threads report it once) */
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(on_receive, struct sock *sk, int length, int flags)
{
	claim(sk);
	return 0;
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int length, int flags)
{
	claim(sk);
	return 0;
}

/* bpf_probe_read_user and bpf_get_current_task are offered to GPL-compatible programs only */
char LICENSE[] SEC("license") = "GPL";
