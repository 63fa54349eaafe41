/**
 * Waiting requests per tenant, served round-robin: a tenant that floods the pod waits behind its own
 * requests, not in front of everyone else's.
 */
export class TenantQueues<T> {
  private readonly queues = new Map<string, T[]>();
  /** Tenants in service order; the head is served next. */
  private order: string[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Items waiting for one tenant. */
  sizeOf(tenant: string): number {
    return this.queues.get(tenant)?.length ?? 0;
  }

  /** Queues an item at the back of its tenant's queue, or at the front (work of a request already admitted). */
  push(tenant: string, item: T, front = false): void {
    let q = this.queues.get(tenant);
    if (!q) {
      this.queues.set(tenant, (q = []));
      this.order.push(tenant);
    }
    if (front) q.unshift(item);
    else q.push(item);
    this.count++;
  }

  /** The next item in round-robin order, without taking it. */
  peek(): T | undefined {
    const tenant = this.order[0];
    return tenant === undefined ? undefined : this.queues.get(tenant)![0];
  }

  /** Removes an item; taking a tenant's head moves that tenant to the back of the rotation. */
  remove(tenant: string, item: T): void {
    const q = this.queues.get(tenant);
    if (!q) return;
    const i = q.indexOf(item);
    if (i < 0) return;
    q.splice(i, 1);
    this.count--;
    if (q.length === 0) {
      this.queues.delete(tenant);
      this.order = this.order.filter((t) => t !== tenant);
    } else if (i === 0 && this.order[0] === tenant) {
      this.order.push(this.order.shift()!);
    }
  }

  drain(): T[] {
    const all = this.order.flatMap((t) => this.queues.get(t) ?? []);
    this.queues.clear();
    this.order = [];
    this.count = 0;
    return all;
  }
}
