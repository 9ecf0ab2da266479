/*
 * Refusing a snapshot from a file: a recording is untrusted input, and everything it could
 * put into a VM is checked here before the VM is touched.
 *
 * - The state bytes must be what the VMM itself produces: the allocator's numbers agree,
 *   every free frame is a user frame below `high` and listed once, rip/rsp are canonical,
 *   rflags carries no system flag the VMM does not set (IOPL, VM, VIF, VIP, reserved
 *   bits), FS/GS bases lie in the user half, KERNEL_GS_BASE is the VMM's 0, the x87/SSE
 *   control words have no reserved bits (MXCSR 31..16: KVM would refuse them or fault).
 *   Selectors, CR0/CR3/CR4/EFER, descriptor tables, XCR0 and the syscall MSRs are not in
 *   the bytes at all: restore always loads the VMM's own.
 * - The memory image's system area (GDT, IDT, TSS + I/O bitmap, CPL0 stubs, entry page,
 *   the kernel half of the PML4, the direct map and entry-page tables) must be byte for
 *   byte what the VMM builds, or the snapshot is refused; the IST stack and the fix-up
 *   list are scratch and are zeroed instead. Honest snapshots always carry the VMM's bytes
 *   there, so a difference can only be damage or an attack, and saying so beats silently
 *   running something else.
 * - Every user page-table entry reachable from the PML4's user half is exactly what
 *   paging.c stores: tables and pages in user frames below `high`, no frame named twice
 *   or also on the free list, no large pages, no flag the VMM never sets.
 *
 * Each refusal writes one line naming the field into `why` and returns -EINVAL (or
 * -EFAULT for an address outside the VM's user frames).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm_internal.h"

#define RFLAGS_RF (1ull << 16)
/* Bits an honest user view may hold: the user's own, bit 1, and IF and RF, which the CPU
 * itself reports in exception frames (the VMM drops RF and sets IF when resuming). */
#define RFLAGS_STATE_ALLOWED (RFLAGS_USER_MASK | RFLAGS_RESERVED | RFLAGS_IF | RFLAGS_RF)
#define MXCSR_VALID 0xffffu
#define PTE_LEAF_REQUIRED (PTE_P | PTE_US | PTE_A | PTE_D)
#define PTE_LEAF_ALLOWED (PTE_LEAF_REQUIRED | PTE_RW | PTE_NX)

static int refuse(char *why, size_t why_len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *why, size_t why_len, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return err;
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static bool bit_test_set(uint64_t *bits, uint64_t i)
{
	bool was = bits[i / 64] & (1ull << (i % 64));
	bits[i / 64] |= 1ull << (i % 64);
	return was;
}

static int check_allocator(const struct vmm_vm *vm, const uint8_t *buf, uint64_t len,
			   char *why, size_t n)
{
	const uint8_t *a = buf + STATE_OFF_ALLOC;
	uint32_t high = load32(a), used = load32(a + 4), free_count = load32(a + 8);
	if (high < FIRST_FRAME_PFN || high > vm->npages)
		return refuse(why, n, -EINVAL, "allocator high 0x%x is outside the VM's frames "
			      "[0x%x, 0x%x]", high, FIRST_FRAME_PFN, vm->npages);
	if (free_count > high - FIRST_FRAME_PFN || len != STATE_FIXED_BYTES + 4ull * free_count)
		return refuse(why, n, -EINVAL, "free list of %u frames does not fit the state "
			      "(%llu bytes, high 0x%x)", free_count, (unsigned long long)len, high);
	if ((uint64_t)used + free_count != high - FIRST_FRAME_PFN)
		return refuse(why, n, -EINVAL, "allocator counts disagree: %u used + %u free != "
			      "%u frames below high", used, free_count, high - FIRST_FRAME_PFN);
	for (const uint8_t *p = a + 12; p < buf + STATE_FIXED_BYTES; p++)
		if (*p)
			return refuse(why, n, -EINVAL, "reserved state byte %u is not zero",
				      (unsigned)(p - buf));
	uint64_t *seen = calloc((vm->npages + 63) / 64, 8);
	if (!seen)
		return -ENOMEM;
	int rc = 0;
	for (uint32_t i = 0; i < free_count && rc == 0; i++) {
		uint32_t pfn = load32(buf + STATE_FIXED_BYTES + 4ull * i);
		if (pfn < FIRST_FRAME_PFN || pfn >= high)
			rc = refuse(why, n, -EFAULT, "free frame list entry %u (0x%x) is outside "
				    "the user frames [0x%x, 0x%x)", i, pfn, FIRST_FRAME_PFN, high);
		else if (bit_test_set(seen, pfn))
			rc = refuse(why, n, -EINVAL, "free frame list names frame 0x%x twice", pfn);
	}
	free(seen);
	return rc;
}

int snapshot_check_state(const struct vmm_vm *vm, const uint8_t *buf, uint64_t len,
			 char *why, size_t n)
{
	if (len < STATE_FIXED_BYTES || memcmp(buf, STATE_MAGIC, 8) != 0)
		return refuse(why, n, -EINVAL, "not canonical vCPU state (%llu bytes, magic "
			      "missing)", (unsigned long long)len);
	if (len > STATE_FIXED_BYTES + 4ull * vm->npages)
		return refuse(why, n, -EINVAL, "state of %llu bytes is larger than this VM's",
			      (unsigned long long)len);
	uint64_t rip = load64(buf + STATE_OFF_RIP), rsp = load64(buf + STATE_OFF_RSP);
	uint64_t rflags = load64(buf + STATE_OFF_RFLAGS);
	if (!canonical(rip))
		return refuse(why, n, -EINVAL, "rip 0x%llx is not canonical",
			      (unsigned long long)rip);
	if (!canonical(rsp))
		return refuse(why, n, -EINVAL, "rsp 0x%llx is not canonical",
			      (unsigned long long)rsp);
	if (!(rflags & RFLAGS_RESERVED) || (rflags & ~RFLAGS_STATE_ALLOWED))
		return refuse(why, n, -EINVAL, "rflags 0x%llx sets bits user mode cannot "
			      "(0x%llx: IOPL, VM, VIF, VIP or reserved)", (unsigned long long)rflags,
			      (unsigned long long)(rflags & ~RFLAGS_STATE_ALLOWED));
	static const char *const base_names[] = {"fs base", "gs base"};
	for (unsigned i = 0; i < 2; i++) {
		uint64_t base = load64(buf + STATE_OFF_BASES + 8 * i);
		if (base >= USER_VA_END)
			return refuse(why, n, -EINVAL, "%s 0x%llx is not a user address",
				      base_names[i], (unsigned long long)base);
	}
	uint64_t kgs = load64(buf + STATE_OFF_BASES + 16);
	if (kgs != 0)
		return refuse(why, n, -EINVAL, "kernel gs base 0x%llx is not the VMM's 0",
			      (unsigned long long)kgs);
	static const char *const fpu_names[] = {"fcw", "fsw", "ftw", "fop"};
	static const uint64_t fpu_max[] = {0xffff, 0xffff, 0xff, 0xffff};
	for (unsigned i = 0; i < 4; i++) {
		uint64_t v = load64(buf + STATE_OFF_FPU + 8 * i);
		if (v > fpu_max[i])
			return refuse(why, n, -EINVAL, "%s 0x%llx does not fit its field",
				      fpu_names[i], (unsigned long long)v);
	}
	uint64_t mxcsr = load64(buf + STATE_OFF_FPU + 6 * 8);
	if (mxcsr & ~(uint64_t)MXCSR_VALID)
		return refuse(why, n, -EINVAL, "mxcsr 0x%llx sets reserved bits",
			      (unsigned long long)mxcsr);
	return check_allocator(vm, buf, len, why, n);
}

static const char *system_page_name(uint64_t pfn)
{
	uint64_t gpa = pfn << PAGE_SHIFT;
	if (gpa == GPA_GDT)
		return "GDT";
	if (gpa == GPA_IDT)
		return "IDT";
	if (gpa >= GPA_TSS && gpa < GPA_STUBS)
		return "TSS and I/O bitmap";
	if (gpa == GPA_STUBS)
		return "CPL0 stubs";
	if (gpa == GPA_ENTRY)
		return "entry page";
	if (gpa == GPA_PML4)
		return "PML4 kernel half";
	if (gpa >= GPA_DIRECT_PDPT && gpa < GPA_ENTRY_PDPT)
		return "direct map";
	if (gpa >= GPA_ENTRY_PDPT && gpa <= GPA_ENTRY_PT)
		return "entry-page tables";
	return "unused system area";
}

static int check_system_area(const struct vmm_vm *vm, uint8_t *image, char *why, size_t n)
{
	uint8_t *own = calloc(1, SYSTEM_AREA_BYTES);
	if (!own)
		return -ENOMEM;
	vmm_build_system_area(own, vm->mem_size);
	int rc = 0;
	for (uint64_t pfn = 0; pfn < FIRST_FRAME_PFN && rc == 0; pfn++) {
		uint64_t gpa = pfn << PAGE_SHIFT;
		uint8_t *page = image + gpa;
		if (gpa >= GPA_SCRATCH && gpa < GPA_FIXOPS + FIXOPS_BYTES) {
			memset(page, 0, VMM_PAGE_SIZE); /* scratch: nothing in it is guest state */
			continue;
		}
		if (gpa == (FAST_PTE_GPA & PAGE_MASK)) {
			/* The fast path's slots: installed or not, as the recording's VM had it;
			 * restore installs them again when the restoring VM has it on. */
			uint64_t at = FAST_PTE_GPA - gpa;
			for (uint64_t off = at; off < at + FAST_PTE_BYTES && rc == 0; off += 8) {
				uint64_t value;
				memcpy(&value, page + off, 8);
				if (!vmm_fastpath_pte_ok(gpa + off, value))
					rc = refuse(why, n, -EINVAL, "page 0x%llx (%s) is not the "
						    "VMM's own: a fast-path slot holds an entry the "
						    "VMM never stores", (unsigned long long)pfn,
						    system_page_name(pfn));
				memcpy(own + gpa + off, &value, 8);
			}
		}
		/* The PML4's user half is the guest's page tables, checked by the walk. */
		uint64_t from = gpa == GPA_PML4 ? VMM_PAGE_SIZE / 2 : 0;
		if (rc == 0 && memcmp(page + from, own + gpa + from, VMM_PAGE_SIZE - from) != 0)
			rc = refuse(why, n, -EINVAL, "page 0x%llx (%s) is not the VMM's own: the "
				    "system area is never taken from a file",
				    (unsigned long long)pfn, system_page_name(pfn));
	}
	free(own);
	return rc;
}

struct walk {
	const struct vmm_vm *vm;
	const uint8_t *image;
	uint32_t high;
	uint64_t *seen;   /* frames on the free list or already named by an entry */
	char *why;
	size_t why_len;
};

static int check_frame(struct walk *w, uint64_t entry_gpa, uint64_t entry, const char *what)
{
	uint64_t gpa = entry & PTE_ADDR, pfn = gpa >> PAGE_SHIFT;
	const char *where = gpa < SYSTEM_AREA_BYTES ? "into the VMM's system area"
			    : gpa >= w->vm->mem_size ? "past the VM's RAM"
						     : "above the frames in use";
	if (pfn < FIRST_FRAME_PFN || pfn >= w->high)
		return refuse(w->why, w->why_len, -EFAULT, "page-table entry at 0x%llx (0x%llx) "
			      "points %s (%s at 0x%llx)", (unsigned long long)entry_gpa,
			      (unsigned long long)entry, where, what, (unsigned long long)gpa);
	if (bit_test_set(w->seen, pfn))
		return refuse(w->why, w->why_len, -EINVAL, "page-table entry at 0x%llx names "
			      "frame 0x%llx, which is free or already mapped",
			      (unsigned long long)entry_gpa, (unsigned long long)pfn);
	return 0;
}

/* Check a user table at `level` (3 = PML4 ... 0 = page table), entries [first, last). */
static int check_table(struct walk *w, uint64_t table, int level, unsigned first,
		       unsigned last)
{
	for (unsigned i = first; i < last; i++) {
		uint64_t at = table + 8ull * i, e = load64(w->image + at);
		if (e == 0)
			continue;
		uint64_t flags = e & ~PTE_ADDR;
		int rc;
		if (level > 0) {
			if (flags != PTE_USER_TABLE)
				return refuse(w->why, w->why_len, -EINVAL, "page-table entry at "
					      "0x%llx (0x%llx) has flags the VMM never sets on a "
					      "table", (unsigned long long)at,
					      (unsigned long long)e);
			rc = check_frame(w, at, e, "a table");
			if (rc == 0)
				rc = check_table(w, e & PTE_ADDR, level - 1, 0, 512);
		} else {
			bool ok = (e & PTE_P) ? (flags & ~PTE_LEAF_ALLOWED) == 0 &&
						(flags & PTE_LEAF_REQUIRED) == PTE_LEAF_REQUIRED
					      : flags == PTE_SW_FRAME;
			if (!ok)
				return refuse(w->why, w->why_len, -EINVAL, "page-table entry at "
					      "0x%llx (0x%llx) has flags the VMM never sets on a "
					      "page", (unsigned long long)at, (unsigned long long)e);
			rc = check_frame(w, at, e, "a page");
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int snapshot_check_image(const struct vmm_vm *vm, uint8_t *image, const uint8_t *state,
			 char *why, size_t n)
{
	int rc = check_system_area(vm, image, why, n);
	if (rc < 0)
		return rc;
	const uint8_t *a = state + STATE_OFF_ALLOC;
	struct walk w = {.vm = vm, .image = image, .high = load32(a), .why = why, .why_len = n};
	w.seen = calloc((vm->npages + 63) / 64, 8);
	if (!w.seen)
		return -ENOMEM;
	uint32_t free_count = load32(a + 8);
	for (uint32_t i = 0; i < free_count; i++)
		bit_test_set(w.seen, load32(state + STATE_FIXED_BYTES + 4ull * i));
	rc = check_table(&w, GPA_PML4, 3, 0, 256);
	free(w.seen);
	return rc;
}
