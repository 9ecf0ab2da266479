/*
 * sdk_all.c - calls every guest SDK function once or more: each assertion kind (with
 * CR_SOMETIMES seen both true and false), setup_complete, send_event, get_random,
 * random_choice, node id and count; prints the values it got so runs can be compared.
 */
#include <inttypes.h>
#include <stdio.h>

#include "chaosreplay.h"

int main(void)
{
    int id = cr_node_id();
    int count = cr_node_count();
    printf("node %d of %d\n", id, count);
    CR_ALWAYS(count >= 1 && id >= 0 && id < count, "node id is within the node count");

    cr_setup_complete();
    CR_REACHABLE("setup completed");

    uint64_t first = cr_get_random();
    uint64_t second = cr_get_random();
    printf("random %016" PRIx64 " %016" PRIx64 "\n", first, second);
    CR_ALWAYS(first != second || first == 0, "two random draws differ");

    for (int i = 0; i < 8; i++) {
        uint64_t pick = cr_random_choice(6);
        printf("choice[%d] %" PRIu64 "\n", i, pick);
        CR_ALWAYS(pick < 6, "random_choice stays below its bound");
        CR_SOMETIMES(pick == 0, "a die roll is sometimes zero");
    }
    CR_SOMETIMES(1, "sometimes true");
    CR_SOMETIMES(0, "sometimes false");

    static const char payload[] = "sdk_all event payload";
    int rc = cr_send_event("sdk_all", payload, sizeof payload - 1);
    printf("send_event %d\n", rc);

    if (count < 1)
        CR_UNREACHABLE("node count below one");
    printf("sdk_all done\n");
    return 0;
}
