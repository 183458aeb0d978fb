/* json.h: transitional forwarder: the JSON DOM moved to the utility room (util/json.h) so that the engine
 * can read JSON headers (safetensors) without reaching into net/. New code includes util/json.h; this file
 * only keeps branches written before the move compiling and may be deleted once they are merged. */
#include "util/json.h"
