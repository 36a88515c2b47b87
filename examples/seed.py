import covalent as ct

executor1 = ct.executor.LocalExecutor()

@ct.electron(executor=executor1)
def identity(x):
    return x

@ct.electron(executor="local")
def square(x):
    return x * x

@ct.lattice
def workflow(a):
    val_1 = identity(x=a)
    return square(x=val_1)

dispatch_id = ct.dispatch(workflow)(a=2)
print(dispatch_id)
output = ct.get_result(dispatch_id=dispatch_id, wait=True)
print(output)
