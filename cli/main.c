#include <stdio.h>
#include "cdiffusers.h"
int main(void) { printf("cdiffusers %s\n", cdf_version()); return 0; }
