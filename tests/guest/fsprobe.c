/* fsprobe: small probes the busybox guest lacks. Built static on the host
 * (gcc -static) and run both in the guest, on the 9p mount, and on the host,
 * on the export, so the outputs must agree.
 *   fsprobe mmap [-p] FILE  map FILE (MAP_SHARED read-only; -p: MAP_PRIVATE,
 *                           writable, and scribble on the private copy) and
 *                           print "<64-bit hash in hex> <size>"
 *   fsprobe readdir DIR     list DIR with getdents only (no stat) and print
 *                           "<entries without . and ..> <first name> <last name>"
 *                           (first/last in byte order)
 * Exit status 0 on success, 1 on error. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int do_mmap(const char *path, int priv)
{
	struct stat st;
	uint64_t h = 1469598103934665603ULL;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(path);
		return 1;
	}
	if (st.st_size > 0) {
		size_t n = (size_t)st.st_size, i = 0;
		unsigned char *p = mmap(NULL, n, PROT_READ | (priv ? PROT_WRITE : 0),
					priv ? MAP_PRIVATE : MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		/* 8 bytes a step (fast under TCG), the tail byte by byte. */
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			h = (h ^ w) * 1099511628211ULL;
			h ^= h >> 29;
		}
		for (; i < n; i++)
			h = (h ^ p[i]) * 1099511628211ULL;
		if (priv)
			memset(p, 0x5a, n < 4096 ? n : 4096);
		munmap(p, n);
	}
	close(fd);
	printf("%016llx %lld\n", (unsigned long long)h, (long long)st.st_size);
	return 0;
}

static int do_readdir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	long n = 0;
	char first[256] = "", last[256] = "";

	if (!d) {
		perror(path);
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == 0 || strcmp(e->d_name, first) < 0)
			snprintf(first, sizeof first, "%s", e->d_name);
		if (n == 0 || strcmp(e->d_name, last) > 0)
			snprintf(last, sizeof last, "%s", e->d_name);
		n++;
	}
	closedir(d);
	printf("%ld %s %s\n", n, n ? first : "-", n ? last : "-");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "mmap") == 0)
		return do_mmap(argv[2], 0);
	if (argc == 4 && strcmp(argv[1], "mmap") == 0 && strcmp(argv[2], "-p") == 0)
		return do_mmap(argv[3], 1);
	if (argc == 3 && strcmp(argv[1], "readdir") == 0)
		return do_readdir(argv[2]);
	fprintf(stderr, "usage: fsprobe mmap [-p] FILE | fsprobe readdir DIR\n");
	return 1;
}
