/* placeholder: replaced by the real tests */
int main(void)
{
    return 0;
}
