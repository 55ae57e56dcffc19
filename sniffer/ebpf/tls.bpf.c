// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * The plaintext of TLS connections, from the TLS library: uprobes on OpenSSL's SSL_write,
 * SSL_read and their _ex variants (libssl.so.3, as Python's ssl module and most services use
 * it) report the bytes each call wrote or read, with the connection's two ends. plaintext.py
 * attaches them and reads the reports from a ring buffer.
 *
 * Which connection: a call's SSL object (of its process: forked processes have theirs at the same
 * addresses) is tied to its socket by the socket's first send or receive inside an SSL call of
 * the same thread (the sock_send_length and sock_recv_length
 * tracepoints fire in the caller's context, inside the write() or read() the library makes); a
 * read served from the library's buffer uses the tie made before.
 *
 * One call's bytes are reported in pieces of up to PIECE bytes, at most PIECES of them: the
 * rest is missing (like a capture's snap length), so a 20 MB upload costs 64 KiB. A piece's
 * offset and the call's total say so: a call's last piece ends at its total, at PIECES pieces,
 * or is empty (its bytes could not be read).
 *
 * Built CO-RE against a vmlinux.h dumped from the running kernel's BTF (see build.py).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "ends.h"

#define PIECE 8192
#define PIECES 8

enum direction { WRITTEN = 0, READ = 1, HANDSHAKE = 2 /* no bytes to report: ties only */ };

/* an SSL call in progress on a thread */
struct call {
	__u64 ssl;
	__u64 buffer;
	__u64 done; /* the _ex variants' size_t * for the count; 0 for the others */
	__u64 entered; /* bpf_ktime_get_ns at entry: a write's bytes leave from then on */
	__u8 direction;
};

/* One report; plaintext.py unpacks this layout (PIECE_HEADER there), then `size` bytes. */
struct piece {
	__u64 ktime; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u32 pid;
	__u32 size; /* bytes of data in this piece */
	__u32 total; /* bytes the call wrote or read */
	__u32 offset; /* where this piece's bytes sit among them */
	__u8 direction;
	__u8 unused[7];
	struct ends ends;
	__u8 data[2 * PIECE]; /* twice: the verifier sees a size masked to 2 * PIECE - 1 */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} pieces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* thread */
	__type(value, struct call);
} calls SEC(".maps");

/* an SSL object of a process (forked processes have theirs at the same addresses) */
struct object {
	__u64 ssl;
	__u64 pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct object);
	__type(value, struct ends);
} sockets SEC(".maps");

static __always_inline struct object object_of(__u64 ssl)
{
	struct object object = { .ssl = ssl, .pid = bpf_get_current_pid_tgid() >> 32 };

	return object;
}

/* pieces the ring buffer had no room for: the reader warns of them */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* room for one piece: too large for the 512-byte stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct piece);
} scratch SEC(".maps");

static __always_inline int enter(void *ssl, const void *buffer, void *done, __u8 direction)
{
	__u64 thread = bpf_get_current_pid_tgid();
	struct call call = {
		.ssl = (__u64)ssl,
		.buffer = (__u64)buffer,
		.done = (__u64)done,
		.entered = bpf_ktime_get_ns(),
		.direction = direction,
	};

	bpf_map_update_elem(&calls, &thread, &call, BPF_ANY);
	return 0;
}

static __always_inline void report(const struct call *call, const struct ends *ends, __u64 total)
{
	__u32 zero = 0;
	struct piece *piece = bpf_map_lookup_elem(&scratch, &zero);

	if (!piece)
		return;
	/* when the bytes were on the wire: a write's as it began, a read's as it returned */
	piece->ktime = call->direction == WRITTEN ? call->entered : bpf_ktime_get_ns();
	piece->pid = bpf_get_current_pid_tgid() >> 32;
	piece->total = total;
	piece->direction = call->direction;
	__builtin_memcpy(&piece->ends, ends, sizeof(*ends));
	for (int i = 0; i < PIECES; i++) {
		__u64 offset = i * PIECE;
		__u64 size;

		if (offset >= total)
			break;
		size = total - offset;
		if (size > PIECE)
			size = PIECE;
		piece->offset = offset;
		/* no change (it is at most PIECE), but a bound the verifier sees: clang cannot drop it */
		asm volatile("%0 &= 0x3fff" : "+r"(size));
		if (bpf_probe_read_user(piece->data, size, (void *)(call->buffer + offset)))
			size = 0; /* not in memory: an empty piece says the rest is missing */
		piece->size = size;
		asm volatile("%0 &= 0x3fff" : "+r"(size));
		if (bpf_ringbuf_output(&pieces, piece, offsetof(struct piece, data) + size, 0)) {
			__u64 *count = bpf_map_lookup_elem(&lost, &zero);

			if (count)
				*count += 1;
		}
		if (!size)
			break;
	}
}

/* An SSL call returned having moved `total` bytes (0: none, or it failed). */
static __always_inline int leave(__u64 total)
{
	__u64 thread = bpf_get_current_pid_tgid();
	struct call *call = bpf_map_lookup_elem(&calls, &thread);
	struct object object;
	struct ends *ends;

	if (!call)
		return 0;
	object = object_of(call->ssl);
	ends = bpf_map_lookup_elem(&sockets, &object);
	if (ends && total > 0 && total <= 0x7fffffff)
		report(call, ends, total);
	bpf_map_delete_elem(&calls, &thread);
	return 0;
}

/* The _ex variants return 1 on success and the count through their last argument. */
static __always_inline int leave_ex(int ok)
{
	__u64 thread = bpf_get_current_pid_tgid();
	struct call *call = bpf_map_lookup_elem(&calls, &thread);
	__u64 total = 0;

	if (call && ok == 1 && call->done)
		bpf_probe_read_user(&total, sizeof(total), (void *)call->done);
	return leave(total);
}

SEC("uprobe")
int BPF_KPROBE(write_enter, void *ssl, const void *buffer, int size)
{
	return enter(ssl, buffer, NULL, WRITTEN);
}

SEC("uretprobe")
int BPF_KRETPROBE(write_leave, int written)
{
	return leave(written > 0 ? written : 0);
}

SEC("uprobe")
int BPF_KPROBE(write_ex_enter, void *ssl, const void *buffer, size_t size, size_t *written)
{
	return enter(ssl, buffer, written, WRITTEN);
}

SEC("uretprobe")
int BPF_KRETPROBE(write_ex_leave, int ok)
{
	return leave_ex(ok);
}

SEC("uprobe")
int BPF_KPROBE(read_enter, void *ssl, void *buffer, int size)
{
	return enter(ssl, buffer, NULL, READ);
}

SEC("uretprobe")
int BPF_KRETPROBE(read_leave, int read)
{
	return leave(read > 0 ? read : 0);
}

SEC("uprobe")
int BPF_KPROBE(read_ex_enter, void *ssl, void *buffer, size_t size, size_t *read)
{
	return enter(ssl, buffer, read, READ);
}

SEC("uretprobe")
int BPF_KRETPROBE(read_ex_leave, int ok)
{
	return leave_ex(ok);
}

/* The handshake ties the socket too: the first request may come with it, read ahead into the
 * library's buffer, and an SSL object may sit where a freed one sat, its tie stale. */
SEC("uprobe")
int BPF_KPROBE(handshake_enter, void *ssl)
{
	return enter(ssl, NULL, NULL, HANDSHAKE);
}

SEC("uretprobe")
int BPF_KRETPROBE(handshake_leave, int ok)
{
	return leave(0);
}

SEC("uprobe")
int BPF_KPROBE(free_enter, void *ssl)
{
	struct object object = object_of((__u64)ssl);

	bpf_map_delete_elem(&sockets, &object);
	return 0;
}

/* A socket used inside an SSL call of this thread: that call's SSL object speaks through it. */
static __always_inline void tie(struct sock *sk)
{
	__u64 thread = bpf_get_current_pid_tgid();
	struct call *call = bpf_map_lookup_elem(&calls, &thread);
	struct object object;
	struct ends ends = {};

	if (!call || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	read_ends(sk, &ends);
	object = object_of(call->ssl);
	bpf_map_update_elem(&sockets, &object, &ends, BPF_ANY);
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int length, int flags)
{
	tie(sk);
	return 0;
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(on_receive, struct sock *sk, int length, int flags)
{
	tie(sk);
	return 0;
}

/* bpf_probe_read_user is offered to GPL-compatible programs only */
char LICENSE[] SEC("license") = "GPL";
