"""What the worker processes of a deployment agree on through Redis, each with expiry so that
a dead process's share comes back by itself:

outstanding  the task messages sent and not yet finished, per wallet: which queue a new one
             takes (a wallet with a backlog queues behind itself), and which ones were lost
slots        attempts running at once per webhook, and its rate limit, across every worker
liveness     which worker processes are alive, and whether Redis was emptied
"""
