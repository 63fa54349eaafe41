/** Cloudflare Queues takes at most 100 messages in one sendBatch. */
const MAX_MESSAGES_PER_BATCH = 100;

/** Queues deliveries for sending, however many: one sendBatch per 100. */
export async function enqueueDeliveries(queue: Queue<{ delivery_id: string }>, ids: readonly string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += MAX_MESSAGES_PER_BATCH) {
    await queue.sendBatch(ids.slice(i, i + MAX_MESSAGES_PER_BATCH).map((id) => ({ body: { delivery_id: id } })));
  }
}
