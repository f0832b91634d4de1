/* A datagram to 127.0.0.1:9, then one to 127.0.0.2:9, from one unconnected UDP socket: the
 * kernel matrix checks that each sendto is recorded with its address and renames the socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return 1;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    const char *dst[2] = {"127.0.0.1", "127.0.0.2"};
    for (int i = 0; i < 2; i++) {
        inet_pton(AF_INET, dst[i], &to.sin_addr);
        if (sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof to) != 1) return 2;
    }
    /* The connect binds the local address (a new name); the send names none (not recorded). */
    if (connect(s, (struct sockaddr *)&to, sizeof to) != 0 || send(s, "y", 1, 0) != 1) return 3;
    return close(s);
}
