/* A static 32-bit program without libc for `cargo xtask vmtest`: opens its first argument with the
 * ia32 open syscall (int $0x80) and exits with 0 when that worked. */
static long sys(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
__attribute__((used)) void cmain(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    long fd = argc > 1 ? sys(5, (long)argv[1], 0, 0) : -1; /* open(path, O_RDONLY) */
    sys(1, fd < 0 ? 1 : 0, 0, 0);                           /* exit */
}
__asm__(".globl _start\n_start:\n  movl %esp, %eax\n  andl $-16, %esp\n  subl $12, %esp\n  pushl %eax\n  call cmain\n  hlt\n");
